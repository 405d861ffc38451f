using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;

namespace Orleans.Mqtt.Gateway;

/// <summary>Fails at startup on gateway settings that cannot work, naming the setting.</summary>
public sealed class MqttGatewayOptionsValidator : IValidateOptions<MqttGatewayOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, MqttGatewayOptions o)
    {
        var errors = new List<string>();
        if (ListenerSettings.BindAddressError(o.BindAddress) is { } badAddress)
        {
            errors.Add(badAddress);
        }

        CheckPort(errors, "Mqtt:Tcp:Port", o.Tcp.Port);
        if (!Enum.IsDefined(o.Tcp.Transport))
        {
            errors.Add($"Mqtt:Tcp:Transport must be {nameof(TcpTransport.Sockets)} or {nameof(TcpTransport.Kestrel)} (was '{o.Tcp.Transport}').");
        }

        CheckPort(errors, "Mqtt:WebSocket:Port", o.WebSocket.Port);
        CheckPort(errors, "Mqtt:Tls:Port", o.Tls.Port);
        if (!o.WebSocket.Path.StartsWith('/'))
        {
            errors.Add($"Mqtt:WebSocket:Path must start with '/' (was '{o.WebSocket.Path}').");
        }

        if (o.Tls.Enabled)
        {
            if (!File.Exists(o.Tls.CertificateFile))
            {
                errors.Add($"Mqtt:Tls:CertificateFile '{o.Tls.CertificateFile}' does not exist.");
            }

            if (string.IsNullOrEmpty(o.Tls.KeyFile) || !File.Exists(o.Tls.KeyFile))
            {
                errors.Add($"Mqtt:Tls:KeyFile '{o.Tls.KeyFile}' does not exist (a PEM private key is required with Mqtt:Tls:CertificateFile).");
            }
        }

        if (o.UsersFile is { Length: > 0 } users && !File.Exists(users))
        {
            errors.Add($"Mqtt:UsersFile '{users}' does not exist.");
        }

        if (o.AclFile is { Length: > 0 } acl)
        {
            if (!File.Exists(acl))
            {
                errors.Add($"Mqtt:AclFile '{acl}' does not exist.");
            }
            else
            {
                try
                {
                    AclFile.Load(acl);
                }
                catch (AclFileException ex)
                {
                    errors.Add($"Mqtt:AclFile '{acl}' {ex.Message}.");
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    errors.Add($"Mqtt:AclFile '{acl}' cannot be read: {ex.Message}");
                }
            }
        }

        if (o.Acl.ReloadCheckInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:Acl:ReloadCheckInterval must be positive (was {o.Acl.ReloadCheckInterval}).");
        }

        if (!Enum.IsDefined(o.Acl.DenyAction))
        {
            errors.Add($"Mqtt:Acl:DenyAction must be Drop or Disconnect (was {o.Acl.DenyAction}).");
        }

        if (o.MaxPacketSize is < 64 or > 268_435_455)
        {
            errors.Add($"Mqtt:MaxPacketSize must be between 64 and 268435455 bytes (was {o.MaxPacketSize}).");
        }

        if (o.MaxConnections < 1)
        {
            errors.Add($"Mqtt:MaxConnections must be at least 1 (was {o.MaxConnections}).");
        }

        if (o.FileDescriptorReserve < 0)
        {
            errors.Add($"Mqtt:FileDescriptorReserve must not be negative (was {o.FileDescriptorReserve}).");
        }

        if (o.ConnectTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:ConnectTimeout must be positive (was {o.ConnectTimeout}).");
        }

        if (o.PacketReadTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:PacketReadTimeout must be positive (was {o.PacketReadTimeout}).");
        }

        if (o.PublishTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:PublishTimeout must be positive (was {o.PublishTimeout}).");
        }

        if (o.SessionConnectTimeout <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:SessionConnectTimeout must be positive (was {o.SessionConnectTimeout}).");
        }

        if (o.SiloLossGrace <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:SiloLossGrace must be positive (was {o.SiloLossGrace}).");
        }

        if (o.HeartbeatInterval <= TimeSpan.Zero)
        {
            errors.Add($"Mqtt:HeartbeatInterval must be positive (was {o.HeartbeatInterval}).");
        }

        if (o.MaxPendingWrites < 1)
        {
            errors.Add($"Mqtt:MaxPendingWrites must be at least 1 (was {o.MaxPendingWrites}).");
        }

        if (o.MaxPendingWriteBytes < 1)
        {
            errors.Add($"Mqtt:MaxPendingWriteBytes must be at least 1 byte (was {o.MaxPendingWriteBytes}).");
        }

        if (o.TopicAliasMaximum is < 0 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:TopicAliasMaximum must be between 0 and 65535 (was {o.TopicAliasMaximum}).");
        }

        if (o.ReceiveMaximum is < 1 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:ReceiveMaximum must be between 1 and 65535 (was {o.ReceiveMaximum}).");
        }

        if (o.MaxKeepAlive is < 0 or > ushort.MaxValue)
        {
            errors.Add($"Mqtt:MaxKeepAlive must be between 0 and 65535 seconds (was {o.MaxKeepAlive}).");
        }

        LimitsOptionsValidator.Validate(errors, o.Limits, o.Overload);
        if (!o.AnonymousAllowed && string.IsNullOrEmpty(o.UsersFile) && !o.Jwt.Enabled && o.Tls.ClientCertificateMode == TlsClientCertificateMode.None)
        {
            errors.Add("Mqtt:AllowAnonymous is false (the default off loopback) but no Mqtt:UsersFile, Mqtt:Jwt or Mqtt:Tls:ClientCertificateMode is configured: no client could connect.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckPort(List<string> errors, string setting, int port)
    {
        if (ListenerSettings.PortError(setting, port) is { } error)
        {
            errors.Add(error);
        }
    }
}
