using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Security;

/// <summary>The ACL file read again when it changes: in place, through a swapped symbolic link, and refused when broken.</summary>
public sealed class AccessControlReloadTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("orleans-mqtt-acl-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_changed_file_is_in_force_for_connections_made_before_it()
    {
        var path = Path.Combine(_directory, "acl");
        File.WriteAllText(path, "pattern readwrite devices/%c/#\n");
        using var control = Control(path);
        var access = control.ForConnection("d1", null, null)!;
        Assert.True(access.MayWrite("devices/d1/up"));

        Replace(path, "pattern read devices/%c/#\n");
        control.CheckForChange();

        Assert.False(access.MayWrite("devices/d1/up"));
        Assert.True(access.MayRead("devices/d1/up"));
    }

    [Fact]
    public void A_broken_file_is_refused_and_the_rules_in_force_stay()
    {
        var path = Path.Combine(_directory, "acl");
        File.WriteAllText(path, "pattern readwrite devices/%c/#\n");
        using var control = Control(path);
        var access = control.ForConnection("d1", null, null)!;

        Replace(path, "pattern read devices/%c/#\ntopic read a/#/b\n");
        Assert.False(control.CheckForChange());
        Assert.True(access.MayWrite("devices/d1/up"));

        // Fixed again: taken.
        Replace(path, "pattern read devices/%c/#\n");
        control.CheckForChange();
        Assert.False(access.MayWrite("devices/d1/up"));
    }

    [Fact]
    public void A_symbolic_link_swapped_to_new_content_is_seen_by_the_periodic_check()
    {
        // The layout of a Kubernetes ConfigMap volume: acl -> ..data/acl, ..data -> a timestamped folder, swapped whole.
        var first = Directory.CreateDirectory(Path.Combine(_directory, "..v1")).FullName;
        File.WriteAllText(Path.Combine(first, "acl"), "topic read a/#\n");
        Directory.CreateSymbolicLink(Path.Combine(_directory, "..data"), first);
        var path = Path.Combine(_directory, "acl");
        File.CreateSymbolicLink(path, Path.Combine("..data", "acl"));
        using var control = Control(path);
        var access = control.ForConnection("d1", null, null)!;
        Assert.True(access.MayRead("a/1"));

        var second = Directory.CreateDirectory(Path.Combine(_directory, "..v2")).FullName;
        File.WriteAllText(Path.Combine(second, "acl"), "topic read b/#\n");
        var data = Path.Combine(_directory, "..data");
        Directory.Delete(data);
        Directory.CreateSymbolicLink(data, second);
        control.CheckForChange();

        Assert.False(access.MayRead("a/1"));
        Assert.True(access.MayRead("b/1"));
    }

    [Fact]
    public void The_validator_names_the_setting_and_the_line_of_a_broken_file()
    {
        var path = Path.Combine(_directory, "acl");
        File.WriteAllText(path, "user a\ntopic read x\ntopic sideways y\ngrant z\n");
        var result = new MqttGatewayOptionsValidator().Validate(null, new MqttGatewayOptions { AclFile = path });

        Assert.True(result.Failed);
        Assert.Contains($"Mqtt:AclFile '{path}' line 4: unknown keyword 'grant'", result.FailureMessage, StringComparison.Ordinal);

        var missing = new MqttGatewayOptionsValidator().Validate(null, new MqttGatewayOptions { AclFile = path + ".none" });
        Assert.Contains("Mqtt:AclFile", missing.FailureMessage, StringComparison.Ordinal);
    }

    private static AccessControl Control(string path) =>
        new(new MqttGatewayOptions { AclFile = path, Acl = { ReloadCheckInterval = TimeSpan.FromHours(1) } }, ClientAccessTests.Metrics(), NullLogger.Instance, TimeProvider.System);

    private static void Replace(string path, string text)
    {
        var temporary = path + ".new";
        File.WriteAllText(temporary, text);
        File.Move(temporary, path, overwrite: true);
    }
}
