namespace Orleans.Mqtt.Grains; internal static class Placeholder { }
