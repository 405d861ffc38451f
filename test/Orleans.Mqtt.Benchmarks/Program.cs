using BenchmarkDotNet.Running;

// dotnet run -c Release --project test/Orleans.Mqtt.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>Entry point marker for the benchmark switcher.</summary>
public partial class Program;
