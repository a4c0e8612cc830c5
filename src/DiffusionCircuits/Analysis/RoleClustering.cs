namespace DiffusionCircuits.Analysis;

/// <summary>
/// The columns of the matrix roles are clustered on (METHOD.md section 4): normalised entropy, five spatial probes and
/// importance for self-attention heads; normalised entropy, three token masses and importance for cross-attention heads.
/// A head's columns of the other kind are NaN (not measured).
/// </summary>
public enum RoleProbe
{
    /// <summary>Mean normalised entropy (column 0).</summary>
    NormalizedEntropy = 0,
    /// <summary>Mean query-key distance (column 1).</summary>
    DistanceImageUnits = 1,
    /// <summary>Mean edge alignment (column 2).</summary>
    EdgeAlignment = 2,
    /// <summary>Mean texture alignment (column 3).</summary>
    TextureAlignment = 3,
    /// <summary>Mean semantic affinity (column 4).</summary>
    SemanticAffinity = 4,
    /// <summary>Mean symmetry (column 5).</summary>
    Symmetry = 5,
    /// <summary>Single-head degradation %, mean of both data sets (column 6).</summary>
    Importance = 6,
    /// <summary>Cross-attention: mean mass on the start token (column 7).</summary>
    StartTokenMass = 7,
    /// <summary>Cross-attention: mean mass on the prompt's tokens (column 8).</summary>
    PromptTokenMass = 8,
    /// <summary>Cross-attention: mean mass on the end token and padding (column 9).</summary>
    PaddingMass = 9,
}

/// <summary>A functional role: a k-means cluster of heads, named by its centroid's dominant probe (centroid z-scores by probe; NaN for probes not measured on its kind of head).</summary>
public sealed record HeadRole(string Name, IReadOnlyList<string> Heads, IReadOnlyList<double> CentroidZ, double Silhouette)
{
    /// <summary>The probe the role is named after, or null for a "mixed" role (no probe leads by <see cref="HeadRoles.NamingMarginZ"/>).</summary>
    public RoleProbe? NamedBy { get; init; }
    /// <summary>+1 or -1: whether the role stands out by a high or a low value of <see cref="NamedBy"/>.</summary>
    public int NamingSign { get; init; }
    /// <summary>How far (z) the naming probe leads the best other probe of the centroid.</summary>
    public double NamingMarginZ { get; init; }
}

/// <summary>The clustering of heads into roles (METHOD.md section 4).</summary>
public sealed record RoleClustering(IReadOnlyList<HeadRole> Roles, int[] Labels, double Inertia, double MeanSilhouette, int K, string? Note)
{
    /// <summary>The role name of head <paramref name="head"/> (index in layer order).</summary>
    public string RoleOf(int head) => Roles[Labels[head]].Name;
}

/// <summary>How well the data support k roles (METHOD.md 4): mean silhouette, bootstrap stability, and the roles of one head or silhouette &lt;= 0.</summary>
public sealed record RoleCountScore(int K, double MeanSilhouette, double StabilityAri, int OneHeadRoles, int NonPositiveSilhouetteRoles);
