#!/usr/bin/env python3
"""Publishes COUNT retained QoS 1 messages of SIZE bytes to PREFIX/0 .. PREFIX/COUNT-1 over one MQTT 3.1.1
connection (at most 100 unacknowledged), and returns once every PUBACK is in; exits 1 if one does not come.

    publish-retained.py HOST:PORT PREFIX COUNT [SIZE]
"""
import socket
import struct
import sys


def var_int(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + var_int(len(body)) + body


def read_packet(sock, buffer):
    while True:
        if len(buffer) >= 2:
            length, shift, i = 0, 0, 1
            while i < len(buffer):
                length |= (buffer[i] & 0x7F) << shift
                shift += 7
                i += 1
                if not buffer[i - 1] & 0x80:
                    if len(buffer) >= i + length:
                        first, body = buffer[0], bytes(buffer[i:i + length])
                        del buffer[:i + length]
                        return first, body
                    break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buffer += chunk


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    prefix, count = sys.argv[2], int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    sock = socket.create_connection((host, int(port)), timeout=30)
    buffer = bytearray()
    sock.sendall(packet(0x10, string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + string(f"retained-{prefix}")))
    first, body = read_packet(sock, buffer)
    if first >> 4 != 2 or body[1] != 0:
        sys.exit(f"CONNACK refused: {body!r}")
    payload = b"r" * size
    sent = acked = 0
    while acked < count:
        while sent < count and sent - acked < 100:
            packet_id = sent % 65535 + 1
            sock.sendall(packet(0x33, string(f"{prefix}/{sent}") + struct.pack(">H", packet_id) + payload))
            sent += 1
        first, _ = read_packet(sock, buffer)
        if first >> 4 == 4:
            acked += 1
    sock.sendall(bytes([0xE0, 0]))
    sock.close()
    print(f"published {count} retained messages under {prefix}/")


if __name__ == "__main__":
    main()
