# Half-precision error of every attnref module against float64, and the tolerances the tests hold.
# One source of truth: docs/en/numerics.md and docs/zh/numerics.md include this file to print the
# table at build time, and tests/test_numerics.py imports it to assert every tolerance.
import copy

import torch

from attnref import esm, flux, fused_qkv, happy_llm, llama

E, H, D, B = 64, 4, 16, 2  # model dim, heads, head dim, batch
CASES = {"short": (16, 1.0), "long": (512, 1.0), "large": (16, 30.0)}  # name: (L, scale of x)
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
ROWS = [
    ("esm.MultiHeadAttention", "sdpa"),
    ("esm.MultiHeadAttention", "eager"),
    ("flux.attention", "sdpa"),
    ("flux.attention", "eager"),
    ("llama.LlamaAttention", "sdpa"),
    ("llama.LlamaAttention", "eager"),
    ("happy_llm.MultiHeadAttention", "sdpa"),
    ("happy_llm.MultiHeadAttention", "eager"),
    ("fused_qkv.MultiHeadAttentionCombinedQKV", "sdpa"),
    ("fused_qkv.MultiHeadAttentionCombinedQKV", "eager"),
    ("fused_qkv.MHAPyTorchClass", "torch"),
]

# Short labels for the table; the page says which class each one is.
LABELS = {
    "esm.MultiHeadAttention": "esm",
    "flux.attention": "flux",
    "llama.LlamaAttention": "llama",
    "happy_llm.MultiHeadAttention": "happy_llm",
    "fused_qkv.MultiHeadAttentionCombinedQKV": "CombinedQKV",
    "fused_qkv.MHAPyTorchClass": "MHAPyTorchClass",
}

# Largest accepted relative error max|y - y64| / max|y64|, by dtype and case, for every row:
# 2x to 3x the largest error measured on CPU over all rows (CUDA kernels also accumulate in
# float32 and are held to the same numbers). bfloat16 keeps 8 significant bits to float16's 11,
# so its bounds are about 8x wider. "large" multiplies the inputs by 30: scores grow up to
# 900-fold, and rounding q and k to the storage dtype (unavoidable: the projections return that
# dtype) moves each score by |score| * 2^-10, enough to reorder near-equal scores in the softmax.
TOLERANCES = {
    "float16": {"short": 2e-3, "long": 2e-3, "large": 1.5e-1},
    "bfloat16": {"short": 1.5e-2, "long": 1.5e-2, "large": 4e-1},
}


def _build(row: str):
    """A float32 callable ``f(*inputs)`` with fixed weights, and a ``make_inputs(L, scale)``."""
    torch.manual_seed(0)
    if row == "esm.MultiHeadAttention":
        module = esm.MultiHeadAttention(E, H)
    elif row == "llama.LlamaAttention":
        module = llama.LlamaAttention(E, H, num_kv_heads=2)
    elif row == "happy_llm.MultiHeadAttention":
        module = happy_llm.MultiHeadAttention(happy_llm.ModelArgs(dim=E, n_heads=H, max_seq_len=512), is_causal=True)
    elif row == "fused_qkv.MultiHeadAttentionCombinedQKV":
        module = fused_qkv.MultiHeadAttentionCombinedQKV(E, E, H, context_length=512)
    elif row == "fused_qkv.MHAPyTorchClass":
        module = fused_qkv.MHAPyTorchClass(E, E, H, context_length=512, need_weights=False)
    else:
        module = None
    if module is not None:
        module.eval()

    def make_inputs(L: int, scale: float) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(L)
        if module is None:  # flux.attention: q, k, v and the rotary matrices pe
            q, k, v = (torch.randn(B, H, L, D, generator=gen) * scale for _ in range(3))
            pos = torch.arange(L, dtype=torch.float32)
            ids = torch.stack((torch.zeros(L), pos // 8, pos % 8), dim=-1).expand(B, L, 3)
            return [q, k, v, flux.EmbedND(D, 10000, [4, 6, 6])(ids)]
        x = torch.randn(B, L, E, generator=gen) * scale
        return [x, x, x] if row == "happy_llm.MultiHeadAttention" else [x]

    return module, make_inputs


def measure(row: str, implementation: str, dtype: str, case: str, device: str = "cpu") -> float:
    """Relative max error of ``row`` run in ``dtype`` against float64 from the same rounded weights.

    Weights and inputs are rounded to ``dtype`` first and the float64 reference starts from those
    rounded values, so the number is the error of the computation, not of storing the inputs.
    """
    module, make_inputs = _build(row)
    L, scale = CASES[case]
    low = DTYPES[dtype]
    inputs = [t.to(device) for t in make_inputs(L, scale)]

    def run(precision: torch.dtype) -> torch.Tensor:
        # pe (the last flux input) is float32 by design; everything else takes the dtype.
        args = [t.to(low).to(precision) for t in inputs]
        if module is None:
            args[-1] = inputs[-1].to(torch.float64 if precision == torch.float64 else torch.float32)
            return flux.attention(*args, implementation=implementation)
        m = copy.deepcopy(module).to(device=device, dtype=low).to(precision)
        if implementation != "torch":
            m.attn_implementation = implementation
        return m(*args)

    with torch.no_grad():
        ref = run(torch.float64)
        out = run(low).to(torch.float64)
    return ((out - ref).abs().max() / ref.abs().max()).item()


# The pages run this file in one markdown-exec session, "numerics", whose globals persist from the
# zh build to the en build: the second language prints the first one's measurements, not new ones.
_MEASURED: dict[tuple, float] = globals().setdefault("_MEASURED", {})


def table(device: str = "cpu", labels: dict[str, str] | None = None) -> str:
    """The Markdown table of :func:`measure` over every row, dtype and case.

    ``labels`` translates the words "module", "kernel", "tolerance" and the case names.
    """
    word = {"module": "module", "kernel": "kernel", "tolerance": "tolerance", **{c: c for c in CASES}}
    word.update(labels or {})
    cols = [(d, c) for d in DTYPES for c in CASES]
    short = {"float16": "fp16", "bfloat16": "bf16"}
    head = f"| {word['module']} ({word['kernel']}) | " + " | ".join(f"{short[d]} {word[c]}" for d, c in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for row, impl in ROWS:
        keys = [(row, impl, d, c, device) for d, c in cols]
        for key in keys:
            if key not in _MEASURED:
                _MEASURED[key] = measure(*key)
        cells = [f"{_MEASURED[key]:.1e}" for key in keys]
        lines.append(f"| `{LABELS[row]}` ({impl}) | " + " | ".join(cells) + " |")
    bounds = " | ".join(f"**{TOLERANCES[d][c]:.1e}**" for d, c in cols)
    lines.append(f"| **{word['tolerance']}** | {bounds} |")
    return "\n".join(lines)
