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
public sealed record HeadRole(string Name, IReadOnlyList<string> Heads, IReadOnlyList<double> CentroidZ, double Silhouette);

/// <summary>The clustering of heads into roles (METHOD.md section 4).</summary>
public sealed record RoleClustering(IReadOnlyList<HeadRole> Roles, int[] Labels, double Inertia, double MeanSilhouette, int K, string? Note)
{
    /// <summary>The role name of head <paramref name="head"/> (index in layer order).</summary>
    public string RoleOf(int head) => Roles[Labels[head]].Name;
}
