#!/usr/bin/env python3
# A connection storm for bench/fd-limit.sh: opens n connections to 127.0.0.1:port one after another, each sending an
# MQTT 5 CONNECT, then reads what each got within the timeout (CONNACK 0x00, a refusing CONNACK, the socket closed or
# reset, no answer) and prints the counts. Then closes every connection and prints how long until a new client gets
# CONNACK 0x00 (the broker's recovery; "never" after 20 s).
#   fd-storm.py port n [timeout s, default 15]
import socket, struct, sys, time
port=int(sys.argv[1]); n=int(sys.argv[2]); tmo=float(sys.argv[3]) if len(sys.argv)>3 else 15
def connect_pkt(cid):
    cid=cid.encode()
    vh=b'\x00\x04MQTT\x05\x02\x00\x3c\x00'   # v5, clean start, keepalive 60, no props
    pl=struct.pack('>H',len(cid))+cid
    body=vh+pl
    return bytes([0x10,len(body)])+body
res={}
socks=[]
t0=time.time()
for i in range(n):
    s=socket.socket(); s.setblocking(True); s.settimeout(5)
    try:
        s.connect(('127.0.0.1',port)); s.sendall(connect_pkt('st%d-%d'%(port,i)))
        socks.append(s)
    except Exception as e:
        res['connect:'+type(e).__name__]=res.get('connect:'+type(e).__name__,0)+1; s.close()
ok=[]
deadline=time.time()+tmo
for s in socks:
    s.settimeout(max(0.01,deadline-time.time()))
    try:
        d=s.recv(64)
        if not d: k='closed'
        elif d[0]==0x20: k='connack 0x%02x'%d[3]
        else: k='other'
    except socket.timeout: k='no answer'
    except ConnectionResetError: k='reset'
    except Exception as e: k=type(e).__name__
    res[k]=res.get(k,0)+1
    if k=='connack 0x00': ok.append(s)
    else: s.close()
print('%.1fs'%(time.time()-t0), dict(sorted(res.items())), flush=True)
# recovery: close everything, then time until a fresh client gets CONNACK 0x00 (give up after 20 s)
for s_ in ok: s_.close()
t1=time.time(); rec=None
while time.time()-t1<20:
    s=socket.socket(); s.settimeout(2)
    try:
        s.connect(('127.0.0.1',port)); s.sendall(connect_pkt('rec%d'%port)); d=s.recv(64)
        if d and d[0]==0x20 and d[3]==0: rec=time.time()-t1; s.close(); break
    except Exception: pass
    s.close(); time.sleep(0.01)
print('recovery', 'never (20 s)' if rec is None else '%.3fs'%rec, flush=True)
