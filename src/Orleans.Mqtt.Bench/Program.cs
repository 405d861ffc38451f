using System.Text.Json;

namespace Orleans.Mqtt.Bench;

/// <summary>Entry point of the MQTT load tool.</summary>
internal static class Program
{
    /// <summary>Parses the command line, runs the scenario, prints the summary and writes the JSON result.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (!BenchOptions.TryParse(args, out var options, out var error))
        {
            await Console.Error.WriteLineAsync(error);
            await Console.Error.WriteLineAsync(BenchOptions.Usage);
            return 1;
        }

        if (options.ShowHelp)
        {
            await Console.Out.WriteLineAsync(BenchOptions.Usage);
            return 0;
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // First Ctrl+C ends the run early with a summary; a second one kills the process.
            e.Cancel = !cancel.IsCancellationRequested;
            cancel.Cancel();
        };

        var result = options.ScenarioKind switch
        {
            "conn" => await new ConnScenario(options, args, Console.Error).RunAsync(cancel.Token),
            "fuzz" => await new FuzzScenario(options, Console.Error).RunAsync(cancel.Token),
            "subroute" => await new SubrouteScenario(options, Console.Error).RunAsync(cancel.Token),
            _ => await new MessageScenario(options, Console.Error).RunAsync(cancel.Token),
        };

        // A worker's stdout is its parent's signal channel; its result goes only to the JSON file.
        if (!options.IsWorker)
        {
            await Console.Out.WriteAsync(result.ToText());
        }

        if (options.JsonPath is { } path)
        {
            await File.WriteAllTextAsync(path, JsonSerializer.Serialize(result, BenchJsonContext.Default.BenchResult) + Environment.NewLine);
        }

        return result.ExitCode;
    }
}
