namespace Orleans.Mqtt.Gateway;

/// <summary>Outcome of checking a CONNECT's credentials.</summary>
internal enum AuthResult
{
    Ok,
    BadCredentials,
    NotAuthorized,
}
