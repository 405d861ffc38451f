using System.Text.Json.Serialization;

namespace Orleans.Mqtt.Clustering;

/// <summary>The source-generated JSON contract of <see cref="MembershipRow"/>.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MembershipRow))]
internal sealed partial class MembershipJsonContext : JsonSerializerContext;
