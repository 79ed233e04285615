# What each attention API returns for a query row with no key to attend to. One source of truth:
# tests/test_atlas.py measures it on every run and checks that docs/*/masks.md shows exactly
# table(lang) (and that transformers' own attention functions behave as the rows that stand for
# them). The table is not computed while the site is built: FlexAttention's first call costs
# seconds of tracing there.
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from attnref import atlas, core

B, H, L, S, D = 1, 1, 3, 4, 8
EMPTY = 1  # the query row whose keys are all masked


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of shape (B, H, L or S, D) in float32 and an (L, S) mask whose row EMPTY is all False."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, n, D, generator=gen) for n in (L, S, S))
    mask_LS = torch.ones(L, S, dtype=torch.bool)
    mask_LS[EMPTY] = False
    return q, k, v, mask_LS


def _softmax_attention(q, k, v, additive_mask):
    # Attention as a textbook (and transformers' eager path) writes it: add the mask, softmax.
    scores = q @ k.transpose(-2, -1) * D**-0.5 + additive_mask
    return scores.softmax(dim=-1) @ v


def _multihead(q, k, v, mask_LS, need_weights):
    # nn.MultiheadAttention with identity projections, so its output is the attention itself.
    # Its boolean masks mean the opposite of attnref's: True = may NOT attend.
    mha = torch.nn.MultiheadAttention(D, 1, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.eye(D).repeat(3, 1))
        mha.in_proj_bias.zero_()
        mha.out_proj.weight.copy_(torch.eye(D))
        mha.out_proj.bias.zero_()
        out, _ = mha(q[:, 0], k[:, 0], v[:, 0], attn_mask=~mask_LS, need_weights=need_weights)
    return out[:, None]


def _flex(q, k, v, mask_LS):
    block_mask = create_block_mask(atlas.mask_mod_from_bool(mask_LS, B, H, L, S), B, H, L, S, device="cpu")
    return flex_attention(q, k, v, block_mask=block_mask)


# (the call, as the page shows it; the function that makes it on inputs())
APIS = [
    ("core.attend(q, k, v, mask)", lambda q, k, v, m: core.attend(q, k, v, m)),
    ("core.sdpa_reference(q, k, v, mask)", lambda q, k, v, m: core.sdpa_reference(q, k, v, m)),
    ("F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
     lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
    ("F.scaled_dot_product_attention(q, k, v, attn_mask=core.bool_to_additive(mask))",
     lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=core.bool_to_additive(m))),
    ("F.scaled_dot_product_attention(q, k, v, attn_mask=hf_eager_mask)",
     lambda q, k, v, m: F.scaled_dot_product_attention(
         q, k, v, attn_mask=atlas.to_transformers_mask(m, B, L, S, dtype=q.dtype))),
    ("flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, ...))", _flex),
    ("softmax(q @ k.mT * scale + core.bool_to_additive(mask)) @ v",
     lambda q, k, v, m: _softmax_attention(q, k, v, core.bool_to_additive(m))),
    ("softmax(q @ k.mT * scale + hf_eager_mask) @ v",
     lambda q, k, v, m: _softmax_attention(q, k, v, atlas.to_transformers_mask(m, B, L, S, dtype=q.dtype))),
    ("nn.MultiheadAttention(...)(q, k, v, attn_mask=~mask)",
     lambda q, k, v, m: _multihead(q, k, v, m, need_weights=True)),
    ("nn.MultiheadAttention(...)(q, k, v, attn_mask=~mask, need_weights=False)",
     lambda q, k, v, m: _multihead(q, k, v, m, need_weights=False)),
]


def classify(out_BHLD: torch.Tensor, v_BHSD: torch.Tensor) -> str:
    """What the output row EMPTY is: "zeros", "NaN", "uniform average" (of all S values) or "other"."""
    row = out_BHLD[..., EMPTY, :]
    if row.isnan().any():
        return "NaN"
    if torch.equal(row, torch.zeros_like(row)):
        return "zeros"
    if torch.allclose(row, v_BHSD.mean(dim=-2), atol=1e-6):
        return "uniform average"
    return "other"


def measure() -> dict[str, str]:
    """Each API's call mapped to what it gives for the fully masked row."""
    q, k, v, mask_LS = inputs()
    return {call: classify(run(q, k, v, mask_LS), v) for call, run in APIS}


LABELS = {
    "en": {"api": "call", "result": "a fully masked row gives", "zeros": "zeros", "NaN": "NaN",
           "uniform average": "the uniform average of all values", "other": "other"},
    "zh": {"api": "调用", "result": "整行屏蔽时的结果", "zeros": "零", "NaN": "NaN",
           "uniform average": "所有值的均匀平均", "other": "其他"},
}


def table(lang: str) -> str:
    """The Markdown table of measure() in the page's language."""
    labels = LABELS[lang]
    lines = [f"| {labels['api']} | {labels['result']} |", "|---|---|"]
    for call, result in measure().items():
        lines.append(f"| `{call}` | {labels[result]} |")
    return "\n".join(lines)
