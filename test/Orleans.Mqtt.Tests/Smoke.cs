namespace Orleans.Mqtt.Tests;
public class SmokeTests { [Xunit.Fact] public void Builds() { Xunit.Assert.True(true); } }
