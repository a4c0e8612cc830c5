namespace DiffusionCircuits.Capture;

/// <summary>
/// The per-head features of METHOD.md sections 1 and 3, in the column order of every table that lists them. Adding a
/// feature: a member here, its field and its case in <see cref="HeadFeatures"/>, and its computation.
/// </summary>
public enum HeadFeature
{
    /// <summary>Attention entropy, nats.</summary>
    EntropyNats,
    /// <summary>Entropy over ln S_k.</summary>
    NormalizedEntropy,
    /// <summary>Mean query-key distance, image sides.</summary>
    DistanceImageUnits,
    /// <summary>Received attention against edge energy (Pearson r).</summary>
    EdgeAlignment,
    /// <summary>Received attention against texture energy, controlling for edges (partial r).</summary>
    TextureAlignment,
    /// <summary>Same-part mass above the part's area share.</summary>
    SemanticAffinity,
    /// <summary>Mass on the mirror window.</summary>
    Symmetry,
    /// <summary>Cross-attention: mass on the first token (CLIP's start token, where heads park attention), mean over queries.</summary>
    StartTokenMass,
    /// <summary>Cross-attention: mass on the prompt's own tokens (between start and end token).</summary>
    PromptTokenMass,
    /// <summary>Cross-attention: mass on the end token and the padding after it.</summary>
    PaddingMass,
}

/// <summary>The per-head numbers of METHOD.md sections 1 and 3 for one image at one timestep.</summary>
public struct HeadFeatures
{
    /// <summary>H = (1/S) sum_i -sum_j p_ij ln p_ij, nats.</summary>
    public float EntropyNats;
    /// <summary>H / ln S_k, in [0, 1].</summary>
    public float NormalizedEntropy;
    /// <summary>sum_i sum_j p_ij |pos_i - pos_j| / S, in units of the image side.</summary>
    public float DistanceImageUnits;
    /// <summary>Pearson r over keys between received attention and the pooled Sobel magnitude of x0.</summary>
    public float EdgeAlignment;
    /// <summary>Partial r of received attention and pooled Laplacian magnitude, controlling for the Sobel magnitude.</summary>
    public float TextureAlignment;
    /// <summary>Mass from a query to keys of its own facial part minus the part's area share, averaged over queries.</summary>
    public float SemanticAffinity;
    /// <summary>Mass on the 3x3 window around the query's mirror position across the vertical axis, averaged over queries.</summary>
    public float Symmetry;
    /// <summary>Cross-attention: (1/S_q) sum_i p_i0, the mass on the first (start) token; NaN for self-attention.</summary>
    public float StartTokenMass;
    /// <summary>Cross-attention: mass on tokens 1 .. L-2 of a prompt of L tokens (all tokens after the first when L is unknown); NaN for self-attention.</summary>
    public float PromptTokenMass;
    /// <summary>Cross-attention: mass on the end token and padding, tokens L-1 .. S_k-1 (NaN when L is unknown, and for self-attention).</summary>
    public float PaddingMass;

    /// <summary>Every feature, in column order.</summary>
    public static readonly IReadOnlyList<HeadFeature> All = Enum.GetValues<HeadFeature>();

    /// <summary>The cross-attention features: where on the conditioning tokens a head's attention goes (METHOD.md 5c).</summary>
    public static readonly IReadOnlyList<HeadFeature> TokenMasses = new[] { HeadFeature.StartTokenMass, HeadFeature.PromptTokenMass, HeadFeature.PaddingMass };

    /// <summary>The spatial probes of self-attention heads: they read token positions, the clean image, part masks (METHOD.md 3).</summary>
    public static readonly IReadOnlyList<HeadFeature> Probes = All.Where(f => f is not (HeadFeature.EntropyNats or HeadFeature.NormalizedEntropy) && !TokenMasses.Contains(f)).ToArray();

    /// <summary>One feature's value.</summary>
    public float this[HeadFeature feature]
    {
        readonly get => feature switch
        {
            HeadFeature.EntropyNats => EntropyNats,
            HeadFeature.NormalizedEntropy => NormalizedEntropy,
            HeadFeature.DistanceImageUnits => DistanceImageUnits,
            HeadFeature.EdgeAlignment => EdgeAlignment,
            HeadFeature.TextureAlignment => TextureAlignment,
            HeadFeature.SemanticAffinity => SemanticAffinity,
            HeadFeature.Symmetry => Symmetry,
            HeadFeature.StartTokenMass => StartTokenMass,
            HeadFeature.PromptTokenMass => PromptTokenMass,
            HeadFeature.PaddingMass => PaddingMass,
            _ => throw new ArgumentOutOfRangeException(nameof(feature), feature, null),
        };
        set
        {
            switch (feature)
            {
                case HeadFeature.EntropyNats: EntropyNats = value; break;
                case HeadFeature.NormalizedEntropy: NormalizedEntropy = value; break;
                case HeadFeature.DistanceImageUnits: DistanceImageUnits = value; break;
                case HeadFeature.EdgeAlignment: EdgeAlignment = value; break;
                case HeadFeature.TextureAlignment: TextureAlignment = value; break;
                case HeadFeature.SemanticAffinity: SemanticAffinity = value; break;
                case HeadFeature.Symmetry: Symmetry = value; break;
                case HeadFeature.StartTokenMass: StartTokenMass = value; break;
                case HeadFeature.PromptTokenMass: PromptTokenMass = value; break;
                case HeadFeature.PaddingMass: PaddingMass = value; break;
                default: throw new ArgumentOutOfRangeException(nameof(feature), feature, null);
            }
        }
    }
}
