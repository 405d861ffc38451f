using BenchmarkDotNet.Running;
using Orleans.Mqtt.Benchmarks;

// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- --filter '*'
// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- retained   (heap held by the 1M-filter index)
if (args is ["retained"])
{
    TopicIndexRetainedSize.Report(Console.Out);
    return;
}

// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- channel   (broadcast channel against per-silo calls)
if (args is ["channel"])
{
    await ChannelComparison.Report(Console.Out);
    return;
}

// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- floor [--silos 1,2,4] [--operations N] [--co-hosted] [--processes]
//   (what Orleans alone costs for a connect's activation and two calls; docs/benchmarks.md, "What bounds a connect")
if (args is ["floor", ..])
{
    var silos = new List<int> { 1, 2, 4 };
    var operations = 20_000;
    var coHosted = false;
    var processes = false;
    for (var i = 1; i < args.Length; i++)
    {
        switch (args[i])
        {
            case "--silos" when i + 1 < args.Length:
                silos = args[++i].Split(',').Select(int.Parse).ToList();
                break;
            case "--operations" when i + 1 < args.Length:
                operations = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
                break;
            case "--co-hosted":
                coHosted = true;
                break;
            case "--processes":
                processes = true;
                break;
            default:
                Console.Error.WriteLine($"floor: unknown argument '{args[i]}' (expected --silos 1,2,4, --operations N, --co-hosted, --processes)");
                Environment.Exit(2);
                break;
        }
    }

    await ActivationFloor.Report(Console.Out, silos, operations, coHosted, processes);
    return;
}

// One silo of "floor --processes", started by it.
if (args is ["floor-silo", var siloPort, var gatewayPort, var primaryPort])
{
    await ActivationFloor.RunSilo(int.Parse(siloPort, System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(gatewayPort, System.Globalization.CultureInfo.InvariantCulture), int.Parse(primaryPort, System.Globalization.CultureInfo.InvariantCulture));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(TopicIndexBenchmarks).Assembly).Run(args);
