namespace Orleans.Mqtt.Silo;
internal static class Program { private static void Main() { } }
