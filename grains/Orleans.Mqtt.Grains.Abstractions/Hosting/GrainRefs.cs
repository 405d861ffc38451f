namespace Orleans.Mqtt.Grains;

/// <summary>
/// References to string-keyed grains of one interface, made without resolving the interface's grain type on every call.
/// </summary>
/// <remarks>
/// <c>IGrainFactory.GetGrain&lt;T&gt;(key)</c> reads <c>T</c>'s attributes to find its grain type each time; done per
/// connect, per replica change and per delivery batch that was 4 % of the broker's CPU in a connect storm. This
/// resolves the types once, from one reference made the usual way, and then builds grain ids directly. (The gateway's
/// integer-keyed topic shards are few enough to keep one reference each.)
/// </remarks>
/// <typeparam name="TGrain">The grain interface.</typeparam>
public sealed class GrainRefs<TGrain>
    where TGrain : IGrainWithStringKey
{
    private readonly IGrainFactory _factory;
    private readonly GrainType _grainType;
    private readonly GrainInterfaceType _interfaceType;

    /// <summary>Resolves <typeparamref name="TGrain"/>'s grain type once.</summary>
    /// <param name="factory">The grain factory references are made with.</param>
    public GrainRefs(IGrainFactory factory)
    {
        _factory = factory;
        var probe = (GrainReference)(object)factory.GetGrain<TGrain>("-");
        _grainType = probe.GrainId.Type;
        _interfaceType = probe.InterfaceType;
    }

    /// <summary>The grain type of <typeparamref name="TGrain"/>'s implementation.</summary>
    public GrainType Type => _grainType;

    /// <summary>The grain interface type of <typeparamref name="TGrain"/>, as silos' manifests list it.</summary>
    public GrainInterfaceType InterfaceType => _interfaceType;

    /// <summary>The reference to the grain with <paramref name="key"/>.</summary>
    public TGrain Get(string key) => (TGrain)_factory.GetGrain(GrainId.Create(_grainType, key), _interfaceType);
}
