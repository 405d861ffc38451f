namespace Orleans.Mqtt; internal static class Placeholder { }
