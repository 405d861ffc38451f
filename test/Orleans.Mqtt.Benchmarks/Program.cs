using BenchmarkDotNet.Running;
using Orleans.Mqtt.Benchmarks;

// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- --filter '*'
// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- retained   (heap held by the 1M-filter index)
if (args is ["retained"])
{
    TopicIndexRetainedSize.Report(Console.Out);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(TopicIndexBenchmarks).Assembly).Run(args);
