using System.Collections.Concurrent;
using k8s.Models;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// helm lint --strict and helm template for each values set in values/ (and the defaults), every rendered manifest
/// parsed strictly against the Kubernetes API models, and what each set must produce.
/// </summary>
public sealed class ChartRenderingTests
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<(string Yaml, Manifests Manifests)>>> Renderings = new();

    public static TheoryData<string> ValuesSets => ["defaults", "external-etcd", "tls-client-certificates", "autoscaling", "single-silo"];

    public static TheoryData<string> BadValues
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var file in Directory.GetFiles(Path.Combine(Helm.ValuesDirectory, "bad"), "*.yaml").Order(StringComparer.Ordinal))
            {
                data.Add(Path.GetFileName(file));
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(ValuesSets))]
    public async Task Lint_passes_strict(string valuesSet)
    {
        var (passed, output) = await Helm.LintAsync(Files(valuesSet));
        Assert.True(passed, output);
    }

    [Theory]
    [MemberData(nameof(ValuesSets))]
    public async Task Every_manifest_parses_strictly_and_the_pods_are_set_up_as_the_chart_promises(string valuesSet)
    {
        var (_, manifests) = await RenderAsync(valuesSet);
        Assert.NotEmpty(manifests.Objects);

        var silos = manifests.StatefulSet("silo");
        Assert.Equal("Parallel", silos.Spec.PodManagementPolicy);
        var headless = manifests.Service("silo");
        Assert.Equal(silos.Spec.ServiceName, headless.Metadata.Name);
        Assert.Equal("None", headless.Spec.ClusterIP);
        Assert.True(headless.Spec.PublishNotReadyAddresses);
        Assert.True(silos.Spec.Template.Spec.TerminationGracePeriodSeconds >= 60);

        var silo = Assert.Single(silos.Spec.Template.Spec.Containers);
        var gateway = Assert.Single(manifests.Gateways.Spec.Template.Spec.Containers);
        Assert.Equal("$(POD_NAME)", Env(silo, "Orleans__Name"));
        Assert.Equal("metadata.name", silo.Env.Single(e => e.Name == "POD_NAME").ValueFrom.FieldRef.FieldPath);
        Assert.Equal("0.0.0.0", Env(gateway, "Mqtt__BindAddress"));
        var dataMount = Assert.Single(silo.VolumeMounts, m => m.Name == "data");
        Assert.Equal(dataMount.MountPath + "/data", Env(silo, "Storage__DataDirectory"));

        foreach (var (pod, container) in new[] { (silos.Spec.Template, silo), (manifests.Gateways.Spec.Template, gateway) })
        {
            Assert.Equal("/health/ready", container.ReadinessProbe.HttpGet.Path);
            Assert.Equal("/health/live", container.LivenessProbe.HttpGet.Path);
            Assert.Equal("http", container.ReadinessProbe.HttpGet.Port.Value);
            Assert.True(pod.Spec.SecurityContext.RunAsNonRoot);
            Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
            Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
            Assert.NotNull(container.Resources.Requests);
            Assert.Matches("^[0-9a-f]{64}$", pod.Metadata.Annotations["checksum/config"]);

            // The host finishes its hand-over or drain 10 s before the kubelet's SIGKILL.
            var shutdown = TimeSpan.Parse(Env(container, "Host__ShutdownTimeout"), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(TimeSpan.FromSeconds(pod.Spec.TerminationGracePeriodSeconds!.Value - 10), shutdown);

            // Every variable names a documented configuration key.
            Assert.Empty(ConfigurationKeys.Unknown(ConfigurationKeys.VariableNames(container, manifests)));
        }

        var gatewayService = manifests.Service("gateway");
        Assert.Contains(gatewayService.Spec.Ports, p => p.Name == "mqtt");
        Assert.Contains(gatewayService.Spec.Ports, p => p.Name == "websocket");
    }

    [Fact]
    public async Task Defaults_bundle_a_three_member_etcd_started_as_the_documentation_advises()
    {
        var (_, manifests) = await RenderAsync("defaults");
        var etcd = manifests.StatefulSet("etcd");
        Assert.Equal(3, etcd.Spec.Replicas);
        Assert.Equal("Parallel", etcd.Spec.PodManagementPolicy);
        var args = Assert.Single(etcd.Spec.Template.Spec.Containers).Args;
        Assert.Contains("--snapshot-count=10000", args);
        Assert.Contains("--auto-compaction-retention=5m", args);
        Assert.Contains(args, a => a.StartsWith("--initial-cluster=mqtt-orleans-mqtt-etcd-0=http://mqtt-orleans-mqtt-etcd-0.mqtt-orleans-mqtt-etcd.brokers.svc.cluster.local:2380,", StringComparison.Ordinal));

        // etcd compacts its own history, so the silos do not.
        var config = manifests.ConfigMap("mqtt-orleans-mqtt-config").Data;
        Assert.Equal("00:00:00", config["Ownership__Etcd__CompactionInterval"]);
        Assert.Equal(3, config["Clustering__Etcd__ConnectionString"].Split(',').Length);
        Assert.Equal("LoadBalancer", manifests.Service("gateway").Spec.Type);
        Assert.DoesNotContain(manifests.Service("gateway").Spec.Ports, p => p.Name == "mqtts");

        // The dashboard's ConfigMap carries the file from dashboards/ unchanged.
        var dashboard = Assert.Single(manifests.OfType<V1ConfigMap>(), c => c.Metadata.Labels.ContainsKey("grafana_dashboard"));
        var file = Path.Combine(Helm.ChartDirectory, "dashboards", "orleans-mqtt.json");
        Assert.Equal(File.ReadAllText(file).TrimEnd(), dashboard.Data["orleans-mqtt.json"].TrimEnd());
    }

    [Fact]
    public async Task The_bundled_etcd_gets_only_flags_etcd_knows()
    {
        // The installed etcd (Debian's etcd-server, 3.4) lists its flags in --help; the image runs 3.5, which keeps them.
        var (_, manifests) = await RenderAsync("defaults");
        var args = Assert.Single(manifests.StatefulSet("etcd").Spec.Template.Spec.Containers).Args;
        var binary = File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : "etcd";
        var info = new System.Diagnostics.ProcessStartInfo(binary, ["--help"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var etcd = System.Diagnostics.Process.Start(info)!;
        var help = await etcd.StandardOutput.ReadToEndAsync() + await etcd.StandardError.ReadToEndAsync();
        await etcd.WaitForExitAsync();
        var unknown = args.Select(a => a.Split('=', 2)[0]).Where(flag => !help.Contains($"  {flag} ", StringComparison.Ordinal)).ToList();
        Assert.True(unknown.Count == 0, $"flags etcd --help does not list: {string.Join(", ", unknown)}");
    }

    [Fact]
    public async Task External_etcd_replaces_the_bundled_one_and_the_cluster_domain_is_a_value()
    {
        var (yaml, manifests) = await RenderAsync("external-etcd");
        Assert.DoesNotContain(manifests.OfType<V1StatefulSet>(), s => s.Metadata.Name.EndsWith("-etcd", StringComparison.Ordinal));
        var config = manifests.ConfigMap("mqtt-orleans-mqtt-config").Data;
        Assert.Equal("https://etcd-0.etcd.example:2379,https://etcd-1.etcd.example:2379,https://etcd-2.etcd.example:2379", config["Clustering__Etcd__ConnectionString"]);
        Assert.Equal("/mqtt-prod", config["Clustering__Etcd__KeyPrefix"]);
        Assert.False(config.ContainsKey("Ownership__Etcd__CompactionInterval"));
        Assert.DoesNotContain("cluster.local", yaml, StringComparison.Ordinal);
        Assert.Contains("svc.k8s.example", yaml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_with_client_certificates_mounts_every_secret_the_settings_name()
    {
        var (_, manifests) = await RenderAsync("tls-client-certificates");
        var certificate = manifests.Single<Certificate>();
        Assert.Equal("mqtt-orleans-mqtt-tls", certificate.Spec.SecretName);
        Assert.Contains("mqtt-orleans-mqtt-gateway.brokers.svc.cluster.local", certificate.Spec.DnsNames);
        Assert.Contains("mqtt.example.com", certificate.Spec.DnsNames);
        Assert.Equal("ClusterIssuer", certificate.Spec.IssuerRef.Kind);
        Assert.Single(manifests.OfType<ServiceMonitor>());
        Assert.Single(manifests.OfType<PodMonitor>());

        var pod = manifests.Gateways.Spec.Template.Spec;
        var gateway = Assert.Single(pod.Containers);
        Assert.Equal("required", Env(gateway, "Mqtt__Tls__ClientCertificateMode"));
        Assert.Equal("false", Env(gateway, "Mqtt__AllowAnonymous"));

        // Every file a setting names lies in a volume mounted from the Secret the values name.
        var secrets = new Dictionary<string, string>
        {
            ["Mqtt__Tls__CertificateFile"] = "mqtt-orleans-mqtt-tls",
            ["Mqtt__Tls__KeyFile"] = "mqtt-orleans-mqtt-tls",
            ["Mqtt__Tls__ClientCaFile"] = "mqtt-client-ca",
            ["Mqtt__Tls__CrlFile"] = "mqtt-client-crl",
            ["Mqtt__UsersFile"] = "mqtt-users",
            ["Mqtt__AclFile"] = "mqtt-acl",
            ["Http__ApiKeysFile"] = "mqtt-admin-keys",
            ["Mqtt__Jwt__PublicKeyFile"] = "mqtt-jwt-key",
        };
        foreach (var (variable, secret) in secrets)
        {
            var path = Env(gateway, variable);
            var mount = Assert.Single(gateway.VolumeMounts, m => path.StartsWith(m.MountPath + "/", StringComparison.Ordinal));
            Assert.Equal(secret, pod.Volumes.Single(v => v.Name == mount.Name).Secret.SecretName);
        }

        var service = manifests.Service("gateway");
        Assert.Equal(31884, service.Spec.Ports.Single(p => p.Name == "mqtts").NodePort);
        Assert.Equal("mqtt-test-user", manifests.Single<V1Pod>().Spec.Containers[0].Env.Single(e => e.Name == "MQTT_USERNAME").ValueFrom.SecretKeyRef.Name);
    }

    [Fact]
    public async Task Monitors_are_made_only_where_their_kinds_are_served()
    {
        var yaml = await Helm.TemplateAsync(Files("tls-client-certificates"));
        var manifests = Manifests.Parse(yaml);
        Assert.Empty(manifests.OfType<ServiceMonitor>());
        Assert.Empty(manifests.OfType<PodMonitor>());
    }

    [Fact]
    public async Task Autoscaling_hands_the_gateway_count_to_an_autoscaler()
    {
        var (_, manifests) = await RenderAsync("autoscaling");
        var autoscaler = manifests.Single<V2HorizontalPodAutoscaler>();
        Assert.Equal(manifests.Gateways.Metadata.Name, autoscaler.Spec.ScaleTargetRef.Name);
        Assert.Equal((3, 12), (autoscaler.Spec.MinReplicas, autoscaler.Spec.MaxReplicas));
        Assert.Null(manifests.Gateways.Spec.Replicas);
        Assert.Equal(5, manifests.StatefulSet("silo").Spec.Replicas);
        Assert.NotNull(manifests.StatefulSet("silo").Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution);
        Assert.Equal("512", manifests.ConfigMap("mqtt-orleans-mqtt-config").Data["Mqtt__TopicShards"]);
        Assert.Equal("5000", Env(manifests.StatefulSet("silo").Spec.Template.Spec.Containers[0], "Mqtt__MaxQueuedMessages"));
    }

    [Fact]
    public async Task A_single_silo_runs_without_a_volume_claim_or_disruption_budget()
    {
        var (_, manifests) = await RenderAsync("single-silo");
        var silos = manifests.StatefulSet("silo");
        Assert.Equal(1, silos.Spec.Replicas);
        Assert.Null(silos.Spec.VolumeClaimTemplates);
        Assert.NotNull(silos.Spec.Template.Spec.Volumes.Single(v => v.Name == "data").EmptyDir);
        Assert.Empty(manifests.OfType<V1PodDisruptionBudget>());
        Assert.DoesNotContain(manifests.OfType<V1ConfigMap>(), c => c.Metadata.Labels?.ContainsKey("grafana_dashboard") == true);
    }

    [Theory]
    [InlineData("publishNotReadyAddresses: true", "publishNotReadyAdresses: true")]
    [InlineData("podManagementPolicy: Parallel", "podManagmentPolicy: Parallel")]
    [InlineData("renewBefore: 360h", "renewBfore: 360h")]
    [InlineData("podMetricsEndpoints:", "podMetricEndpoints:")]
    public async Task A_misspelt_field_fails_the_parse(string field, string misspelt)
    {
        var (yaml, _) = await RenderAsync("tls-client-certificates");
        Assert.Contains(field, yaml, StringComparison.Ordinal);
        Assert.ThrowsAny<Exception>(() => Manifests.Parse(yaml.Replace(field, misspelt, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_variable_that_names_no_configuration_key_is_reported()
    {
        var yaml = await Helm.TemplateAsync([], extraArgs: ["--set-json", """silo.extraEnv=[{"name":"Mqtt__Tcp__Prot","value":"1884"}]"""]);
        var manifests = Manifests.Parse(yaml);
        var silo = manifests.StatefulSet("silo").Spec.Template.Spec.Containers[0];
        Assert.Equal(["Mqtt__Tcp__Prot"], ConfigurationKeys.Unknown(ConfigurationKeys.VariableNames(silo, manifests)));
    }

    [Theory]
    [MemberData(nameof(BadValues))]
    public async Task The_values_schema_refuses(string file)
    {
        var path = Path.Combine(Helm.ValuesDirectory, "bad", file);

        // Each file says on its first line what helm's refusal must name, so it fails for the reason it was written for.
        var expected = File.ReadLines(path).First().Split("naming: ", 2)[1].Trim();
        var error = await Helm.TemplateFailureAsync(path);
        Assert.Contains("schema", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    internal static IEnumerable<string> Files(string valuesSet) =>
        valuesSet == "defaults" ? [] : [Path.Combine(Helm.ValuesDirectory, valuesSet + ".yaml")];

    private static string Env(V1Container container, string name) =>
        Assert.Single(container.Env, e => e.Name == name).Value;

    private static Task<(string Yaml, Manifests Manifests)> RenderAsync(string valuesSet) =>
        Renderings.GetOrAdd(valuesSet, set => new(async () =>
        {
            var yaml = await Helm.TemplateAsync(Files(set), Helm.MonitoringApis);
            return (yaml, Manifests.Parse(yaml));
        })).Value;
}
