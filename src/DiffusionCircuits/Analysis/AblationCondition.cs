using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Analysis;

/// <summary>What an ablated head's output z becomes (METHOD.md section 5).</summary>
public enum AblationKind
{
    /// <summary>z[l,h] = 0.</summary>
    Zero,

    /// <summary>z[l,h] = its mean over the data set at the same timestep and position.</summary>
    Mean,

    /// <summary>
    /// z[l,h] = its value on another image of the same data set at the same timestep and position (seeded donors,
    /// several draws averaged): the ablated model stays on its input distribution (ACDC, causal scrubbing).
    /// </summary>
    Resample,
}

/// <summary>What each ablation kind needs from the capture session.</summary>
public static class AblationKinds
{
    /// <summary>Whether the kind feeds head outputs z back in (mean, resample): the session must expose them.</summary>
    public static bool ReadsHeadOutputs(this AblationKind kind) => kind != AblationKind.Zero;
}

/// <summary>What an ablation condition stands for.</summary>
public enum ConditionKind
{
    /// <summary>Any set of heads a caller chose.</summary>
    HeadSet,

    /// <summary>One head alone.</summary>
    Head,

    /// <summary>Every head of a functional role.</summary>
    Role,

    /// <summary>The first heads of a data set's ascending-importance order (a step of the circuit search).</summary>
    Prefix,
}

/// <summary>
/// A set of heads ablated together (global head indices in layer order), with a readable name and what it stands for.
/// Build the named kinds with <see cref="ForHead"/>, <see cref="ForRole"/> and <see cref="ForPrefix"/>; their names are
/// made here only (<c>down.1.attn.h3</c>, <c>role.edge</c>, <c>prefix.real.5</c>) and never parsed back.
/// </summary>
public sealed record AblationCondition(string Name, IReadOnlyList<int> Heads)
{
    /// <summary>What the condition stands for (<see cref="ConditionKind.HeadSet"/> unless built by a factory).</summary>
    public ConditionKind Kind { get; init; } = ConditionKind.HeadSet;

    /// <summary>The head, role or data-set order the condition is named after: a head's or role's name, the order's data set.</summary>
    public string Subject { get; init; } = Name;

    /// <summary>One head alone.</summary>
    public static AblationCondition ForHead(HeadId head) => new(head.Name, new[] { head.Index }) { Kind = ConditionKind.Head };

    /// <summary>Every head of a role.</summary>
    public static AblationCondition ForRole(string role, IReadOnlyList<int> heads) =>
        new($"role.{role}", heads) { Kind = ConditionKind.Role, Subject = role };

    /// <summary>The joint ablation of the first heads of <paramref name="order"/>'s importance order.</summary>
    public static AblationCondition ForPrefix(DataSetId order, IReadOnlyList<int> heads) =>
        new($"prefix.{order.Name}.{heads.Count}", heads) { Kind = ConditionKind.Prefix, Subject = order.Name };

    /// <summary>Whether this is the prefix of <paramref name="order"/>'s order of length <paramref name="length"/>.</summary>
    public bool IsPrefix(DataSetId order, int length) => Kind == ConditionKind.Prefix && Subject == order.Name && Heads.Count == length;
}
