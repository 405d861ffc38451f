using System.Buffers.Binary;
using System.Text;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// The value of an owner record: a fixed 25-byte header then the gateway id.
/// <code>
/// [0]      format version (1)
/// [1..9)   ConnectionId, int64 little-endian
/// [9..17)  Epoch, int64 little-endian
/// [17..25) LeaseId, int64 little-endian
/// [25..)   GatewayId, UTF-8
/// </code>
/// </summary>
internal static class OwnerRecordCodec
{
    public const byte Version = 1;
    public const int HeaderLength = 25;

    public static byte[] Encode(SessionOwner owner)
    {
        var value = new byte[HeaderLength + Encoding.UTF8.GetByteCount(owner.GatewayId)];
        value[0] = Version;
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(1), owner.ConnectionId);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(9), owner.Epoch);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(17), owner.LeaseId);
        Encoding.UTF8.GetBytes(owner.GatewayId, value.AsSpan(HeaderLength));
        return value;
    }

    public static SessionOwner Decode(ReadOnlySpan<byte> value)
    {
        if (value.Length < HeaderLength || value[0] != Version)
        {
            throw new InvalidDataException($"An ownership record of {value.Length} bytes with format {(value.IsEmpty ? -1 : value[0])} is not one this store writes.");
        }

        return new SessionOwner(
            Encoding.UTF8.GetString(value[HeaderLength..]),
            BinaryPrimitives.ReadInt64LittleEndian(value[1..]),
            BinaryPrimitives.ReadInt64LittleEndian(value[9..]),
            BinaryPrimitives.ReadInt64LittleEndian(value[17..]));
    }
}
