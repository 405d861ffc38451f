using k8s;
using k8s.Models;

namespace Orleans.Mqtt.Chart.Tests;

// Minimal models of the custom kinds the chart renders, with the fields their CRDs define that the chart uses (field
// names as in cert-manager v1 and prometheus-operator monitoring.coreos.com/v1). The strict parse refuses any other
// field, so a misspelt one fails as it does for the built-in kinds; a field the chart starts to use must be added here
// after checking it in the CRD.

/// <summary>cert-manager.io/v1 Certificate.</summary>
public sealed class Certificate : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = string.Empty;

    public string Kind { get; set; } = string.Empty;

    public V1ObjectMeta Metadata { get; set; } = new();

    public CertificateSpec Spec { get; set; } = new();
}

public sealed class CertificateSpec
{
    public string SecretName { get; set; } = string.Empty;

    public string? Duration { get; set; }

    public string? RenewBefore { get; set; }

    public List<string> DnsNames { get; set; } = [];

    public CertificatePrivateKey? PrivateKey { get; set; }

    public IssuerReference IssuerRef { get; set; } = new();
}

public sealed class CertificatePrivateKey
{
    public string? Algorithm { get; set; }

    public int? Size { get; set; }

    public string? RotationPolicy { get; set; }
}

public sealed class IssuerReference
{
    public string Name { get; set; } = string.Empty;

    public string? Kind { get; set; }

    public string? Group { get; set; }
}

/// <summary>monitoring.coreos.com/v1 ServiceMonitor.</summary>
public sealed class ServiceMonitor : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = string.Empty;

    public string Kind { get; set; } = string.Empty;

    public V1ObjectMeta Metadata { get; set; } = new();

    public ServiceMonitorSpec Spec { get; set; } = new();
}

public sealed class ServiceMonitorSpec
{
    public V1LabelSelector Selector { get; set; } = new();

    public List<MetricsEndpoint> Endpoints { get; set; } = [];
}

/// <summary>monitoring.coreos.com/v1 PodMonitor.</summary>
public sealed class PodMonitor : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = string.Empty;

    public string Kind { get; set; } = string.Empty;

    public V1ObjectMeta Metadata { get; set; } = new();

    public PodMonitorSpec Spec { get; set; } = new();
}

public sealed class PodMonitorSpec
{
    public V1LabelSelector Selector { get; set; } = new();

    public List<MetricsEndpoint> PodMetricsEndpoints { get; set; } = [];
}

/// <summary>An endpoint of a ServiceMonitor or PodMonitor (the fields both kinds share).</summary>
public sealed class MetricsEndpoint
{
    public string Port { get; set; } = string.Empty;

    public string? Path { get; set; }

    public string? Interval { get; set; }
}
