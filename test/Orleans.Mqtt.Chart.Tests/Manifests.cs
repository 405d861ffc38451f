using k8s;
using k8s.Models;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// Rendered manifests parsed strictly: the built-in kinds into the Kubernetes API models of the KubernetesClient
/// package, the custom kinds the chart makes (cert-manager's Certificate, the Prometheus operator's ServiceMonitor and
/// PodMonitor) into the minimal models in CustomResources.cs. A field a model does not have fails the parse, as does a
/// kind without a model.
/// </summary>
public sealed class Manifests
{
    private static readonly Dictionary<string, Type> CustomKinds = new()
    {
        ["cert-manager.io/v1/Certificate"] = typeof(Certificate),
        ["monitoring.coreos.com/v1/ServiceMonitor"] = typeof(ServiceMonitor),
        ["monitoring.coreos.com/v1/PodMonitor"] = typeof(PodMonitor),
    };

    private Manifests(IReadOnlyList<object> objects) => Objects = objects;

    public IReadOnlyList<object> Objects { get; }

    public static Manifests Parse(string yaml) => new(KubernetesYaml.LoadAllFromString(yaml, CustomKinds, strict: true));

    public IEnumerable<T> OfType<T>() => Objects.OfType<T>();

    public T Single<T>() => Assert.Single(Objects.OfType<T>());

    public V1StatefulSet StatefulSet(string component) =>
        Assert.Single(OfType<V1StatefulSet>(), s => s.Metadata.Name == $"{Helm.Release}-orleans-mqtt-{component}");

    public V1Deployment Gateways => Assert.Single(OfType<V1Deployment>());

    public V1Service Service(string name) => Assert.Single(OfType<V1Service>(), s => s.Metadata.Name == $"{Helm.Release}-orleans-mqtt-{name}");

    public V1ConfigMap ConfigMap(string name) => Assert.Single(OfType<V1ConfigMap>(), c => c.Metadata.Name == name);

    public bool Has(string kind) => Objects.Any(o => o is IKubernetesObject k && k.Kind == kind);
}
