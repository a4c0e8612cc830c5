using DiffusionCircuits.Capture;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace DiffusionCircuits.Analysis;

/// <summary>The columns of the matrix roles are clustered on (METHOD.md section 4): five probes, normalised entropy and importance.</summary>
public enum RoleProbe
{
    /// <summary>Mean normalised entropy.</summary>
    NormalizedEntropy,
    /// <summary>Mean query-key distance.</summary>
    DistanceImageUnits,
    /// <summary>Mean edge alignment.</summary>
    EdgeAlignment,
    /// <summary>Mean texture alignment.</summary>
    TextureAlignment,
    /// <summary>Mean semantic affinity.</summary>
    SemanticAffinity,
    /// <summary>Mean symmetry.</summary>
    Symmetry,
    /// <summary>Single-head degradation %, mean of both data sets.</summary>
    Importance,
}

/// <summary>A functional role: a k-means cluster of heads, named by its centroid's dominant probe.</summary>
public sealed record HeadRole(string Name, IReadOnlyList<string> Heads, IReadOnlyList<double> CentroidZ, double Silhouette);

/// <summary>The clustering of heads into roles (METHOD.md section 4).</summary>
public sealed record RoleClustering(IReadOnlyList<HeadRole> Roles, int[] Labels, double Inertia, double MeanSilhouette, int K, string? Note)
{
    public string RoleOf(int head) => Roles[Labels[head]].Name;
}
