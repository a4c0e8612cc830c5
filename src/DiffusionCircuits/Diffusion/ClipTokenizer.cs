using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace DiffusionCircuits.Diffusion;

/// <summary>A prompt as the text encoder takes it: token ids padded to the context length, and what each token is.</summary>
/// <param name="Ids">Start token, the prompt's tokens (truncated to fit), end token, then padding: <see cref="ClipTokenizer.ContextLength"/> ids.</param>
/// <param name="Length">Tokens before the padding (start and end tokens included).</param>
/// <param name="Texts">Each id's text (<c>photo</c>, <c>&lt;|startoftext|&gt;</c>, the end-of-word mark removed), for reports.</param>
public sealed record TokenizedPrompt(string Prompt, int[] Ids, int Length, string[] Texts);

/// <summary>
/// CLIP's tokenizer (the one Stable Diffusion pipelines ship in <c>tokenizer/</c>: vocab.json + merges.txt), as
/// Hugging Face's CLIPTokenizer pads and truncates: start token, at most context - 2 BPE tokens, end token, then the pad
/// token up to the context length. The byte-level BPE is Microsoft.ML.Tokenizers' (it reproduces openai/CLIP's token
/// ids: tests compare them on reference prompts); the text clean-up before it is CLIP's: ftfy's fixes that need no
/// guessing (Unicode NFC, Latin ligatures, full-width forms, curly quotes), HTML entities unescaped twice, whitespace
/// collapsed, lower case. ftfy's mojibake repair (text decoded in the wrong encoding) is not reproduced.
/// </summary>
public sealed class ClipTokenizer
{
    private const string StartToken = "<|startoftext|>", EndToken = "<|endoftext|>", EndOfWord = "</w>";

    // openai/CLIP's pre-tokenisation pattern (simple_tokenizer.py), case-insensitive.
    private static readonly Regex Words = new(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.Compiled);

    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<int, string> _textOf;

    /// <summary>Reads <c>vocab.json</c>, <c>merges.txt</c> and, when present, <c>tokenizer_config.json</c> (pad token, context length) from <paramref name="folder"/>.</summary>
    public ClipTokenizer(string folder)
    {
        string vocab = Path.Combine(folder, "vocab.json"), merges = Path.Combine(folder, "merges.txt");
        foreach (var file in new[] { vocab, merges })
            if (!File.Exists(file)) throw new FileNotFoundException($"Tokenizer file '{file}' does not exist (a CLIP tokenizer folder holds vocab.json and merges.txt).", file);
        string? padToken = null;
        string config = Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(config))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(config));
                if (doc.RootElement.TryGetProperty("model_max_length", out var max) && max.TryGetInt32(out int n) && n is > 2 and <= 4096) ContextLength = n;
                if (doc.RootElement.TryGetProperty("pad_token", out var pad))
                    padToken = pad.ValueKind == JsonValueKind.String ? pad.GetString() : pad.TryGetProperty("content", out var c) ? c.GetString() : null;
            }
            catch (JsonException e) { throw new InvalidDataException($"Tokenizer config '{config}' is not valid JSON: {e.Message}", e); }
        }
        Dictionary<string, int> vocabulary;
        try { vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocab)) ?? new(); }
        catch (JsonException e) { throw new InvalidDataException($"Tokenizer vocabulary '{vocab}' is not a JSON object of token ids: {e.Message}", e); }
        foreach (var special in new[] { StartToken, EndToken })
            if (!vocabulary.ContainsKey(special)) throw new InvalidDataException($"Tokenizer vocabulary '{vocab}' has no '{special}': it is not a CLIP vocabulary.");
        StartId = vocabulary[StartToken];
        EndId = vocabulary[EndToken];
        PadId = padToken != null && vocabulary.TryGetValue(padToken, out int p) ? p : EndId;
        var specials = new Dictionary<string, int> { [StartToken] = StartId, [EndToken] = EndId };
        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(vocab, merges)
            {
                ByteLevel = true, EndOfWordSuffix = EndOfWord, PreTokenizer = new RegexPreTokenizer(Words, specials), Normalizer = new ClipTextCleaner(),
                SpecialTokens = specials,
            });
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"Tokenizer files in '{folder}' cannot be read as a CLIP BPE tokenizer: {e.Message}", e);
        }
        _textOf = vocabulary.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
    }

    /// <summary>Tokens the text encoder takes (77 for CLIP).</summary>
    public int ContextLength { get; } = 77;
    /// <summary>The start-of-text id.</summary>
    public int StartId { get; }
    /// <summary>The end-of-text id.</summary>
    public int EndId { get; }
    /// <summary>The id padding fills with (the end token unless the tokenizer config names another, as Stable Diffusion 2's "!").</summary>
    public int PadId { get; }

    /// <summary>The BPE token ids of <paramref name="text"/> after CLIP's clean-up, without start or end token.</summary>
    public IReadOnlyList<int> Encode(string text) => _bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);

    /// <summary>Start token, the prompt's tokens (the first context - 2), end token, padding.</summary>
    public TokenizedPrompt Tokenize(string prompt)
    {
        var body = Encode(prompt).Take(ContextLength - 2);
        var ids = new List<int> { StartId };
        ids.AddRange(body);
        ids.Add(EndId);
        int length = ids.Count;
        while (ids.Count < ContextLength) ids.Add(PadId);
        var array = ids.ToArray();
        return new TokenizedPrompt(prompt, array, length, array.Select(TextOf).ToArray());
    }

    /// <summary>A token's readable text: the vocabulary entry with its end-of-word mark removed and byte-level characters decoded.</summary>
    public string TextOf(int id)
    {
        if (!_textOf.TryGetValue(id, out var token)) return $"#{id}";
        if (id == StartId || id == EndId) return token;
        string word = token.EndsWith(EndOfWord, StringComparison.Ordinal) ? token[..^EndOfWord.Length] : token;
        var bytes = word.Select(c => ByteOf.TryGetValue(c, out byte b) ? b : (byte)'?').ToArray();
        return Encoding.UTF8.GetString(bytes);
    }

    // GPT-2's byte-to-character table, inverted: printable Latin-1 maps to itself, the other bytes to U+0100 upwards.
    private static readonly Dictionary<char, byte> ByteOf = BuildByteTable();

    private static Dictionary<char, byte> BuildByteTable()
    {
        var table = new Dictionary<char, byte>();
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[printable ? (char)b : (char)(256 + next++)] = (byte)b;
        }
        return table;
    }
}

/// <summary>
/// CLIP's text clean-up before BPE (openai/CLIP simple_tokenizer: ftfy.fix_text, HTML unescaped twice, whitespace
/// collapsed and trimmed, lower case). Of ftfy it applies the deterministic fixes: NFC, Latin ligatures, half- and
/// full-width forms, curly quotes; not its mojibake repair.
/// </summary>
internal sealed class ClipTextCleaner : Normalizer
{
    private static readonly Regex Whitespace = new(@"\s+", RegexOptions.Compiled);

    // ftfy.chardata.LIGATURES.
    private static readonly Dictionary<char, string> Ligatures = new()
    {
        ['Ĳ'] = "IJ", ['ĳ'] = "ij", ['ŉ'] = "ʼn", ['Ǳ'] = "DZ", ['ǲ'] = "Dz", ['ǳ'] = "dz", ['Ǆ'] = "DŽ", ['ǅ'] = "Dž", ['ǆ'] = "dž",
        ['Ǉ'] = "LJ", ['ǈ'] = "Lj", ['ǉ'] = "lj", ['Ǌ'] = "NJ", ['ǋ'] = "Nj", ['ǌ'] = "nj", ['ﬀ'] = "ff", ['ﬁ'] = "fi", ['ﬂ'] = "fl",
        ['ﬃ'] = "ffi", ['ﬄ'] = "ffl", ['ﬅ'] = "ſt", ['ﬆ'] = "st",
    };

    public override string Normalize(string original)
    {
        var fixedText = new StringBuilder(original.Length);
        foreach (char c in original.Normalize(NormalizationForm.FormC))
        {
            if (Ligatures.TryGetValue(c, out var expanded)) fixedText.Append(expanded);
            else if (c == '\u3000') fixedText.Append(' ');
            // ftfy.chardata.WIDTH_MAP: half- and full-width forms to their NFKC (standard-width) characters.
            else if (c is >= '\uFF01' and <= '\uFFEF') fixedText.Append(c.ToString().Normalize(NormalizationForm.FormKC));
            else if (c is '\u02BC' or (>= '\u2018' and <= '\u201B')) fixedText.Append('\'');
            else if (c is >= '\u201C' and <= '\u201F') fixedText.Append('"');
            else fixedText.Append(c);
        }
        string text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(fixedText.ToString().Normalize(NormalizationForm.FormC)));
        return Whitespace.Replace(text, " ").Trim().ToLower(CultureInfo.InvariantCulture);
    }

    public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
}
