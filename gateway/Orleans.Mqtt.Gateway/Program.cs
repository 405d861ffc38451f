namespace Orleans.Mqtt.Gateway;
internal static class Program { private static void Main() { } }
