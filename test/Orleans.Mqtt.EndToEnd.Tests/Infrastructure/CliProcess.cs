using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A child process (a command-line MQTT peer such as mosquitto_sub, or a silo or gateway of a cluster) with its output
/// captured line by line.
/// </summary>
public sealed class CliProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private CliProcess(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? string.Empty,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        _process = new Process { StartInfo = info, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => Signal();
    }

    public IReadOnlyCollection<string> Lines => _lines;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static CliProcess Start(string file, params string[] args) => Start(file, args, null, null);

    /// <summary>Starts a program with extra environment variables and a working directory.</summary>
    public static CliProcess Start(string file, string[] args, IReadOnlyDictionary<string, string>? environment, string? workingDirectory)
    {
        var p = new CliProcess(file, args, environment, workingDirectory);
        p._process.Start();
        p._process.BeginOutputReadLine();
        p._process.BeginErrorReadLine();
        return p;
    }

    /// <summary>Runs a command to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, params string[] args)
    {
        await using var p = Start(file, args);
        await p.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return (p.ExitCode, string.Join('\n', p.Lines));
    }

    public async Task<string> WaitForLineAsync(Func<string, bool> predicate, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var changed = _changed.Task;
            foreach (var line in _lines)
            {
                if (predicate(line))
                {
                    return line;
                }
            }

            if (_process.HasExited)
            {
                // Output may still be draining; one more look after the streams close.
                await _process.WaitForExitAsync(cts.Token);
                foreach (var line in _lines)
                {
                    if (predicate(line))
                    {
                        return line;
                    }
                }

                throw new InvalidOperationException($"{_process.StartInfo.FileName} exited ({_process.ExitCode}) without the expected line:\n" + string.Join('\n', _lines));
            }

            try
            {
                await changed.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{_process.StartInfo.FileName}: expected line not seen:\n" + string.Join('\n', _lines));
            }
        }
    }

    /// <summary>Waits for <paramref name="count"/> lines matching <paramref name="predicate"/>.</summary>
    public async Task<List<string>> WaitForLinesAsync(Func<string, bool> predicate, int count, TimeSpan? timeout = null)
    {
        await WaitForLineAsync(_ => _lines.Count(predicate) >= count, timeout);
        return _lines.Where(predicate).ToList();
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
    }

    /// <summary>SIGTERM, then waits for the process to exit: it shuts down gracefully.</summary>
    public async Task TerminateAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            await WaitForExitAsync(timeout);
        }
    }

    /// <summary>SIGKILL to the process and its children: no shutdown code runs, an MQTT client sends no DISCONNECT.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue(line);
            Signal();
        }
    }

    private void Signal() =>
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
