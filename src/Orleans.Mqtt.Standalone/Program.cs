namespace Orleans.Mqtt.Standalone;
internal static class Program { private static void Main() { } }
