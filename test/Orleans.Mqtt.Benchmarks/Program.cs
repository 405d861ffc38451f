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

BenchmarkSwitcher.FromAssembly(typeof(TopicIndexBenchmarks).Assembly).Run(args);
