using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using k8s.Models;

namespace Orleans.Mqtt.Chart.Tests;

/// <summary>
/// One rendered container run as a local process the way a kubelet would run it: its command and arguments, its
/// environment resolved from <c>envFrom</c> ConfigMaps, <c>env</c> values and the downward API (pod name and IP), with
/// <c>$(VAR)</c> references expanded, and nothing else from the test's own environment. The image's <c>/app</c>
/// folder is the <c>dotnet publish</c> output; the pod's IP is a loopback address of its own.
/// </summary>
public sealed class Pod : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly Process _process;

    private Pod(string name, string ip, V1Container container, Process process)
    {
        Name = name;
        IP = ip;
        Container = container;
        _process = process;
    }

    public string Name { get; }

    public string IP { get; }

    public V1Container Container { get; }

    /// <summary>The environment the process was started with.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; private init; } = new Dictionary<string, string>();

    public bool HasExited => _process.HasExited;

    /// <summary>The port a container port name stands for (as a probe or Service refers to it).</summary>
    public int Port(string name) => Container.Ports.Single(p => p.Name == name).ContainerPort;

    /// <summary>Starts the container's command as a process.</summary>
    public static Pod Start(string name, string ip, V1PodTemplateSpec template, Manifests manifests, string imageRoot, string workingDirectory)
    {
        var container = Assert.Single(template.Spec.Containers);
        var environment = ResolveEnvironment(container, name, ip, manifests);
        var command = container.Command.Concat(container.Args ?? []).Select(a => MapImagePath(Expand(a, environment), imageRoot)).ToList();
        var info = new ProcessStartInfo(command[0], command.Skip(1))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };

        // Only what the image itself provides (where dotnet is, a home) besides what the chart sets.
        info.Environment.Clear();
        foreach (var inherited in new[] { "PATH", "HOME", "DOTNET_ROOT" })
        {
            if (System.Environment.GetEnvironmentVariable(inherited) is { } value)
            {
                info.Environment[inherited] = value;
            }
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = new Process { StartInfo = info };
        var pod = new Pod(name, ip, container, process) { Environment = environment };
        process.OutputDataReceived += (_, e) => pod.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => pod.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return pod;
    }

    /// <summary>Probes the container's readiness probe (its path and named port on the pod IP) until it answers 200.</summary>
    public async Task WaitReadyAsync()
    {
        var probe = Container.ReadinessProbe.HttpGet;
        var url = $"http://{IP}:{Port(probe.Port.Value)}{probe.Path}";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + ReadyTimeout;
        while (true)
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"{Name} exited ({_process.ExitCode}):\n{Log()}");
            }

            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Name} not ready at {url}:\n{Log()}");
            }

            // A kubelet probes periodically too; there is no push signal before the HTTP endpoint is up.
            await Task.Delay(200);
        }
    }

    /// <summary>The pod's /metrics, from the port the monitors scrape (<c>http</c>).</summary>
    public async Task<string> ScrapeAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync($"http://{IP}:{Port("http")}/metrics");
    }

    /// <summary>SIGTERM, as a kubelet stops a pod; returns the exit code, or null when it is still running after <paramref name="gracePeriod"/>.</summary>
    public async Task<int?> TerminateAsync(TimeSpan gracePeriod)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        try
        {
            await _process.WaitForExitAsync().WaitAsync(gracePeriod);
            return _process.ExitCode;
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    public string Log(int lines = 40)
    {
        var text = new StringBuilder();
        text.Append("--- ").Append(Name).AppendLine(" ---");
        foreach (var line in _lines.TakeLast(lines))
        {
            text.AppendLine(line);
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    /// <summary>
    /// The container's environment as a kubelet builds it: every key of each <c>envFrom</c> ConfigMap, then each
    /// <c>env</c> entry in order, its value with <c>$(VAR)</c> references to variables defined before it expanded.
    /// </summary>
    internal static Dictionary<string, string> ResolveEnvironment(V1Container container, string podName, string podIP, Manifests manifests)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var source in container.EnvFrom ?? [])
        {
            Assert.NotNull(source.ConfigMapRef);
            foreach (var (key, value) in manifests.ConfigMap(source.ConfigMapRef.Name).Data ?? new Dictionary<string, string>())
            {
                environment[key] = value;
            }
        }

        foreach (var variable in container.Env ?? [])
        {
            environment[variable.Name] = variable.ValueFrom?.FieldRef?.FieldPath switch
            {
                null when variable.ValueFrom is null => Expand(variable.Value ?? string.Empty, environment),
                "metadata.name" => podName,
                "metadata.namespace" => Helm.Namespace,
                "status.podIP" => podIP,
                _ => throw new NotSupportedException($"{variable.Name}: only fieldRef metadata.name, metadata.namespace and status.podIP are simulated"),
            };
        }

        return environment;
    }

    // Kubernetes' rule: $(NAME) of a defined variable is replaced, $$ stands for $, anything else stays as written.
    private static string Expand(string value, IReadOnlyDictionary<string, string> defined)
    {
        var text = new StringBuilder();
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '$' && i + 1 < value.Length && value[i + 1] == '$')
            {
                text.Append('$');
                i++;
            }
            else if (value[i] == '$' && i + 1 < value.Length && value[i + 1] == '(' && value.IndexOf(')', i) is var end and > 0
                && defined.TryGetValue(value[(i + 2)..end], out var replacement))
            {
                text.Append(replacement);
                i = end;
            }
            else
            {
                text.Append(value[i]);
            }
        }

        return text.ToString();
    }

    private static string MapImagePath(string argument, string imageRoot) =>
        argument.StartsWith("/app/", StringComparison.Ordinal) ? Path.Combine(imageRoot, argument["/app/".Length..]) : argument;

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue(line);
        }
    }
}
