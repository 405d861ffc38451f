namespace Orleans.Mqtt.Grains;

/// <summary>
/// References to grains of one interface, made without resolving the interface's grain type on every call.
/// </summary>
/// <remarks>
/// <c>IGrainFactory.GetGrain&lt;T&gt;(key)</c> reads <c>T</c>'s attributes to find its grain type each time; done per
/// connect, per replica change and per delivery batch that was 4 % of the broker's CPU in a connect storm. This
/// resolves the types once, from one reference made the usual way, and then builds grain ids directly.
/// </remarks>
/// <typeparam name="TGrain">The grain interface.</typeparam>
public sealed class GrainRefs<TGrain>
    where TGrain : IAddressable
{
    private readonly IGrainFactory _factory;
    private readonly GrainType _grainType;
    private readonly GrainInterfaceType _interfaceType;

    private GrainRefs(IGrainFactory factory, TGrain probe)
    {
        _factory = factory;
        var reference = (GrainReference)(object)probe;
        _grainType = reference.GrainId.Type;
        _interfaceType = reference.InterfaceType;
    }

    /// <summary>The reference to the grain with <paramref name="key"/> (string-keyed interfaces).</summary>
    public TGrain Get(string key) => (TGrain)_factory.GetGrain(GrainId.Create(_grainType, key), _interfaceType);

    /// <summary>The reference to the grain with <paramref name="key"/> (integer-keyed interfaces).</summary>
    public TGrain Get(long key) =>
        (TGrain)_factory.GetGrain(GrainId.Create(_grainType, GrainIdKeyExtensions.CreateIntegerKey(key)), _interfaceType);

    internal static GrainRefs<TGrain> Create(IGrainFactory factory, TGrain probe) => new(factory, probe);
}

/// <summary>Creates <see cref="GrainRefs{TGrain}"/>.</summary>
public static class GrainRefs
{
    /// <summary>References to string-keyed grains of <typeparamref name="TGrain"/>.</summary>
    public static GrainRefs<TGrain> ForStringKey<TGrain>(IGrainFactory factory)
        where TGrain : IGrainWithStringKey =>
        GrainRefs<TGrain>.Create(factory, factory.GetGrain<TGrain>("-"));

    /// <summary>References to integer-keyed grains of <typeparamref name="TGrain"/>.</summary>
    public static GrainRefs<TGrain> ForIntegerKey<TGrain>(IGrainFactory factory)
        where TGrain : IGrainWithIntegerKey =>
        GrainRefs<TGrain>.Create(factory, factory.GetGrain<TGrain>(0));
}
