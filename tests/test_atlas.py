"""attnref.atlas: every mask of core, in every spelling, gives the same attention.

The spellings: attnref's boolean mask through ``core.attend`` (both kernels); PyTorch's
``scaled_dot_product_attention`` with a boolean mask, an additive mask or (for the top-left causal
mask only) ``is_causal=True``; FlexAttention with the atlas mask_mod as a ``BlockMask`` (and
ALiBi's score_mod); transformers' own ``sdpa`` and ``eager`` attention functions with the 4D masks
of ``atlas.to_transformers_mask``. Every case is run once as it is and once with some query rows
emptied, and what each API gives on those rows is asserted.

FlexAttention runs eagerly here. ``torch.compile`` of it works on CPU with torch 2.13 but takes
about 25 s per mask; the eager path computes the same function by applying the mask_mod to the
whole score matrix. It ignores the BlockMask's block tables, so the BlockMask is checked on its
own (``test_block_mask_tables_match_the_mask``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import and_masks, create_block_mask, create_mask, flex_attention
from transformers import masking_utils as hf_masks
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.bloom import modeling_bloom
from transformers.models.llama.modeling_llama import eager_attention_forward

from attnref import atlas, core, esm, llama
from conftest import DOCS, LANGS

_spec = importlib.util.spec_from_file_location("empty_rows", DOCS / "snippets" / "empty_rows.py")
empty_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(empty_rows)

B, H, D = 3, 2, 8
ATOL = 1e-5  # float32; only the order of summation differs between the kernels
SIZES = [(6, 6), (3, 8), (1, 5)]  # (L, S): self-attention, a chunk after a cache, one decode step


@dataclass
class Case:
    """One mask of core in attnref's spelling and FlexAttention's."""

    mask: torch.Tensor  # boolean, True = may attend, broadcastable to (B, H, L, S)
    mask_mod: Callable
    bias_HLS: torch.Tensor | None = None  # ALiBi
    score_mod: Callable | None = None
    is_causal: bool = False  # F.scaled_dot_product_attention(is_causal=True) spells it


def make_case(name: str, L: int, S: int, seed: int = 0) -> Case:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, S + 1, (B,), generator=gen)
    if name == "causal":
        return Case(core.causal_mask(L, S), atlas.causal_mask_mod(L, S), is_causal=L == S)
    if name == "causal_top_left":
        return Case(core.causal_mask(L, S, align="top-left"), atlas.causal_mask_mod(L, S, align="top-left"),
                    is_causal=True)
    if name == "sliding_window":
        return Case(core.sliding_window_mask(L, S, window=3), atlas.sliding_window_mask_mod(L, S, window=3))
    if name == "chunked_causal":
        return Case(core.chunked_causal_mask(L, S, chunk_size=3), atlas.chunked_causal_mask_mod(L, S, chunk_size=3))
    if name == "block_causal":
        return Case(core.block_causal_mask(L, S, block_size=3), atlas.block_causal_mask_mod(L, S, block_size=3))
    if name == "prefix_lm":
        prefix = torch.randint(0, S + 1, (B,), generator=gen)
        return Case(core.prefix_lm_mask(prefix, L, S), atlas.prefix_lm_mask_mod(prefix, L, S))
    if name in ("padding_right", "padding_left"):
        side = name.split("_")[1]
        return Case(core.padding_mask(lengths, S, side=side), atlas.padding_mask_mod(lengths, S, side=side))
    if name == "padding_left_causal":
        # Left padding under a causal mask empties the rows of the pad queries by itself.
        mask = core.padding_mask(lengths, S, side="left") & core.causal_mask(L, S)
        return Case(mask, and_masks(atlas.padding_mask_mod(lengths, S, side="left"), atlas.causal_mask_mod(L, S)))
    if name in ("seq_id", "seq_id_causal"):
        # Packing is self-attention over one row: the mask needs L == S.
        seq_id = torch.randint(0, 3, (B, S), generator=gen).sort(dim=-1).values[:, -L:]
        if name == "seq_id":
            return Case(core.seq_id_mask(seq_id), atlas.seq_id_mask_mod(seq_id))
        return Case(core.seq_id_mask(seq_id) & core.causal_mask(L),
                    and_masks(atlas.seq_id_mask_mod(seq_id), atlas.causal_mask_mod(L)))
    if name == "alibi":
        return Case(core.causal_mask(L, S), atlas.causal_mask_mod(L, S),
                    bias_HLS=core.alibi_bias(H, L, S), score_mod=atlas.alibi_score_mod(H, L, S))
    raise AssertionError(name)


NAMES = ["causal", "causal_top_left", "sliding_window", "chunked_causal", "block_causal", "prefix_lm",
         "padding_right", "padding_left", "padding_left_causal", "seq_id", "seq_id_causal", "alibi"]
CASES = [(name, L, S) for name in NAMES for L, S in SIZES if not (name.startswith("seq_id") and L != S)]


def with_empty_rows(case: Case, L: int, seed: int) -> tuple[Case, torch.Tensor]:
    """The case with some query rows masked entirely; returns (case, the emptied rows (B, 1, L, 1))."""
    gen = torch.Generator().manual_seed(100 + seed)
    keep_B1L1 = torch.rand(B, 1, L, 1, generator=gen) > 0.4
    keep_B1L1[0, 0, 0, 0] = False  # at least one empty row

    def keep(b, h, q_idx, kv_idx):
        return keep_B1L1[b, 0, q_idx, 0]

    emptied = Case(case.mask & keep_B1L1, and_masks(case.mask_mod, keep), case.bias_HLS, case.score_mod)
    return emptied, ~keep_B1L1


def qkv(L: int, S: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, n, D, generator=gen) for n in (L, S, S))


class _HFModule(torch.nn.Module):
    """What transformers' attention functions read from the module calling them."""

    num_key_value_groups = 1
    is_causal = False


def spellings(case: Case, q, k, v) -> dict[str, torch.Tensor]:
    """The attention of one case in every spelling, each ``(B, H, L, D)``."""
    L, S = q.shape[-2], k.shape[-2]
    additive = core.bool_to_additive(case.mask, q.dtype)
    if case.bias_HLS is not None:
        additive = additive + case.bias_HLS
    out = {
        "F.sdpa additive": F.scaled_dot_product_attention(q, k, v, attn_mask=additive),
        "flex_attention": flex_attention(
            q, k, v, score_mod=case.score_mod,
            block_mask=create_block_mask(case.mask_mod, B, H, L, S, device="cpu"),
        ),
    }
    if case.bias_HLS is None:  # a bias has no boolean form
        out["core.attend sdpa"] = core.attend(q, k, v, case.mask, implementation="sdpa")
        out["core.attend eager"] = core.attend(q, k, v, case.mask, implementation="eager")
        out["F.sdpa bool"] = F.scaled_dot_product_attention(q, k, v, attn_mask=case.mask)
        hf_bool = atlas.to_transformers_mask(case.mask, B, L, S)
        hf_additive = atlas.to_transformers_mask(case.mask, B, L, S, dtype=q.dtype)
        out["transformers sdpa"] = sdpa_attention_forward(_HFModule(), q, k, v, hf_bool)[0].transpose(1, 2)
        out["transformers eager"] = eager_attention_forward(
            _HFModule().eval(), q, k, v, hf_additive, scaling=D**-0.5)[0].transpose(1, 2)
    if case.is_causal:
        out["F.sdpa is_causal"] = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out


# What a row with no key to attend to gives, by spelling (transformers' eager path blocks with
# finfo.min, so its softmax averages every value; see docs/snippets/empty_rows.py).
EMPTY_ROW = {
    "core.attend sdpa": "zeros",
    "core.attend eager": "zeros",
    "F.sdpa bool": "zeros",
    "F.sdpa additive": "zeros",
    "flex_attention": "zeros",
    "transformers sdpa": "zeros",
    "transformers eager": "uniform average",
}


# -- every spelling, the same attention --------------------------------------------------------


def assert_every_spelling_agrees(name: str, case: Case, q, k, v) -> int:
    """Every spelling equals core.sdpa_reference on the rows that have a key to attend to, and
    gives what EMPTY_ROW records on the rows that have none; returns the number of empty rows."""
    B, H, L, S = *q.shape[:2], q.shape[-2], k.shape[-2]
    additive = core.bool_to_additive(case.mask)
    reference = core.sdpa_reference(q, k, v, additive if case.bias_HLS is None else additive + case.bias_HLS)
    empty_BHL = (~case.mask.expand(B, H, L, S)).all(dim=-1)
    assert torch.equal(reference[empty_BHL], torch.zeros_like(reference[empty_BHL]))  # attnref: zeros
    average_BHLD = v.mean(dim=-2, keepdim=True).expand(B, H, L, D)
    outputs = spellings(case, q, k, v)
    assert "flex_attention" in outputs and "F.sdpa additive" in outputs
    assert ("F.sdpa is_causal" in outputs) == case.is_causal
    for spelling, out in outputs.items():
        message = f"{name}: {spelling}"
        torch.testing.assert_close(out[~empty_BHL], reference[~empty_BHL], atol=ATOL, rtol=0, msg=message)
        if EMPTY_ROW.get(spelling, "zeros") == "zeros":
            assert torch.equal(out[empty_BHL], torch.zeros_like(out[empty_BHL])), message
        else:
            torch.testing.assert_close(out[empty_BHL], average_BHLD[empty_BHL], atol=ATOL, rtol=0, msg=message)
    return int(empty_BHL.sum())


@pytest.mark.parametrize("name,L,S", CASES)
def test_every_spelling_gives_the_same_attention(name, L, S):
    case = make_case(name, L, S)
    assert_every_spelling_agrees(name, case, *qkv(L, S))


@pytest.mark.parametrize("name,L,S", CASES)
def test_every_spelling_with_rows_that_have_no_key(name, L, S):
    case, _ = with_empty_rows(make_case(name, L, S, seed=1), L, seed=L + S)
    assert assert_every_spelling_agrees(name, case, *qkv(L, S, seed=1)) > 0


def test_is_causal_is_the_top_left_mask_not_the_cache_mask():
    L, S = 3, 8
    q, k, v = qkv(L, S)
    is_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    top_left = core.attend(q, k, v, core.causal_mask(L, S, align="top-left"))
    bottom_right = core.attend(q, k, v, core.causal_mask(L, S))
    torch.testing.assert_close(is_causal, top_left, atol=ATOL, rtol=0)
    assert (is_causal - bottom_right).abs().max() > 0.1
    # core.attend's own is_causal is bottom-right.
    torch.testing.assert_close(core.attend(q, k, v, is_causal=True), bottom_right, atol=ATOL, rtol=0)
    # torch 2.13 takes attn_mask and is_causal=True together and applies both: still top-left.
    padding = core.padding_mask(torch.tensor([8, 6, 7]), S)
    both = F.scaled_dot_product_attention(q, k, v, attn_mask=padding, is_causal=True)
    torch.testing.assert_close(both, core.attend(q, k, v, padding & core.causal_mask(L, S, align="top-left")),
                               atol=ATOL, rtol=0)


# -- the mask_mods are the masks of core -------------------------------------------------------


@pytest.mark.parametrize("name,L,S", CASES)
def test_mask_mod_is_the_core_mask(name, L, S):
    case = make_case(name, L, S, seed=3)
    expected = case.mask.expand(B, H, L, S)
    # As FlexAttention calls it (vmap over scalar indices) ...
    assert torch.equal(create_mask(case.mask_mod, B, H, L, S, device="cpu"), expected)
    # ... and on broadcast index tensors, as transformers' sdpa_mask calls its mask functions.
    b, h, q_idx, kv_idx = (torch.arange(n).view([-1 if i == d else 1 for i in range(4)])
                           for d, n in enumerate((B, H, L, S)))
    assert torch.equal(case.mask_mod(b, h, q_idx, kv_idx).expand(B, H, L, S), expected)


@pytest.mark.parametrize("L,S", SIZES)
def test_alibi_score_mod_adds_the_core_bias(L, S):
    # The attention cannot tell (a constant per row cancels in the softmax): compare the scores.
    score_mod = atlas.alibi_score_mod(H, L, S)
    b, h, q_idx, kv_idx = (torch.arange(n).view([-1 if i == d else 1 for i in range(4)])
                           for d, n in enumerate((1, H, L, S)))
    scores_1HLS = torch.randn(1, H, L, S)
    assert torch.equal(score_mod(scores_1HLS, b, h, q_idx, kv_idx), scores_1HLS + core.alibi_bias(H, L, S))


@pytest.mark.parametrize("name,L,S", [c for c in CASES if c[1] == c[2] or c[1] > 1])
def test_block_mask_tables_match_the_mask(name, L, S):
    """A block is listed when any of its (query, key) pairs may attend: the BlockMask is the mask
    at block resolution. Compiled kernels skip the blocks it leaves out."""
    case = make_case(name, L, S, seed=4)
    size = 2
    block_mask = create_block_mask(case.mask_mod, B, H, L, S, device="cpu", BLOCK_SIZE=size)
    pad_L, pad_S = -L % size, -S % size
    padded = F.pad(case.mask.expand(B, H, L, S), (0, pad_S, 0, pad_L), value=False)
    any_in_block = padded.unflatten(2, (-1, size)).unflatten(-1, (-1, size)).any(dim=(3, 5))
    assert torch.equal(block_mask.to_dense().bool(), any_in_block)


def test_block_mask_without_the_batch_dim_only_holds_batch_0():
    """B=None builds the block tables from batch 0 alone: wrong for a padding mask. The eager
    CPU path hides it (it reads only the mask_mod); the block tables show it."""
    lengths = torch.tensor([2, 8])
    mask_mod = atlas.padding_mask_mod(lengths, 8)
    q, k, v = qkv(4, 8)
    q, k, v = q[:2], k[:2], v[:2]
    per_batch = create_block_mask(mask_mod, 2, None, 4, 8, device="cpu", BLOCK_SIZE=2)
    batch_0 = create_block_mask(mask_mod, None, None, 4, 8, device="cpu", BLOCK_SIZE=2)
    assert per_batch.to_dense()[1].sum() > batch_0.to_dense()[0].sum()
    expected = core.attend(q, k, v, core.padding_mask(lengths, 8))
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=batch_0), expected, atol=ATOL, rtol=0)


def test_mask_mod_from_bool_is_the_mask():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(B, 1, 4, 6, generator=gen) > 0.5
    mask_mod = atlas.mask_mod_from_bool(mask, B, H, 4, 6)
    assert torch.equal(create_mask(mask_mod, B, H, 4, 6, device="cpu"), mask.expand(B, H, 4, 6))
    q, k, v = qkv(4, 6)
    block_mask = create_block_mask(mask_mod, B, H, 4, 6, device="cpu")
    torch.testing.assert_close(flex_attention(q, k, v, block_mask=block_mask), core.attend(q, k, v, mask),
                               atol=ATOL, rtol=0)


# -- the transformers spelling is transformers' own --------------------------------------------


def _hf_masks(mask_function, L, S, attention_mask=None):
    """transformers' (B, 1, L, S) masks for a mask function, boolean and additive float32."""
    kwargs = dict(batch_size=B, q_length=L, kv_length=S, q_offset=S - L, kv_offset=0,
                  mask_function=mask_function, attention_mask=attention_mask)
    return (hf_masks.sdpa_mask(**kwargs, allow_is_causal_skip=False),
            hf_masks.eager_mask(**kwargs, dtype=torch.float32))


@pytest.mark.parametrize("L,S", SIZES)
@pytest.mark.parametrize("name", ["causal", "sliding_window", "chunked_causal", "block_causal", "prefix_lm",
                                  "padding_right", "padding_left"])
def test_to_transformers_mask_is_what_transformers_builds(name, L, S):
    gen = torch.Generator().manual_seed(L * S)
    lengths = torch.randint(1, S + 1, (B,), generator=gen)
    attention_mask = None
    causal = hf_masks.causal_mask_function
    if name == "causal":
        mask, function = core.causal_mask(L, S), causal
    elif name == "sliding_window":
        mask, function = core.sliding_window_mask(L, S, window=3), hf_masks.sliding_window_causal_mask_function(3)
    elif name == "chunked_causal":
        mask = core.chunked_causal_mask(L, S, chunk_size=3)
        function = hf_masks.chunked_causal_mask_function(3, torch.zeros(B, dtype=torch.long))
    elif name == "block_causal":
        # transformers' blockwise overlay, or-ed with the causal mask, with one block id per 3 tokens.
        mask = core.block_causal_mask(L, S, block_size=3)
        function = hf_masks.or_masks(causal, hf_masks.blockwise_overlay((torch.arange(S) // 3).expand(B, S)))
    elif name == "prefix_lm":
        # PaliGemma's prefix: block id 0 on the prefix, -1 (no block) elsewhere, or-ed with causal.
        prefix = torch.randint(0, S + 1, (B,), generator=gen)
        mask = core.prefix_lm_mask(prefix, L, S)
        block_ids = torch.where(torch.arange(S) < prefix[:, None], 0, -1)
        function = hf_masks.or_masks(causal, hf_masks.blockwise_overlay(block_ids))
    else:  # transformers' 2D attention_mask (True on real tokens, once made boolean) under the causal mask
        side = name.split("_")[1]
        pad_B11S = core.padding_mask(lengths, S, side=side)
        mask, function, attention_mask = pad_B11S & core.causal_mask(L, S), causal, pad_B11S[:, 0, 0]
    hf_bool, hf_additive = _hf_masks(function, L, S, attention_mask)
    assert torch.equal(atlas.to_transformers_mask(mask, B, L, S), hf_bool)
    assert torch.equal(atlas.to_transformers_mask(mask, B, L, S, dtype=torch.float32), hf_additive)
    assert torch.equal(atlas.from_transformers_mask(hf_additive), hf_bool)
    assert torch.equal(atlas.from_transformers_mask(hf_bool), hf_bool)


def test_packed_sequences_are_found_from_restarting_positions_as_transformers_does():
    lengths = [3, 5, 2]
    seq_id = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))[None]
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    assert torch.equal(hf_masks.find_packed_sequence_indices(position_ids), seq_id)
    function = hf_masks.and_masks(hf_masks.causal_mask_function, hf_masks.packed_sequence_mask_function(seq_id))
    hf_bool = hf_masks.sdpa_mask(batch_size=1, q_length=10, kv_length=10, mask_function=function,
                                 allow_is_causal_skip=False)
    assert torch.equal(atlas.to_transformers_mask(core.seq_id_mask(seq_id) & core.causal_mask(10), 1, 10, 10),
                       hf_bool)


def test_transformers_mask_errors():
    with pytest.raises(ValueError, match=r"mask: expected a shape broadcastable to \(B, 1, L, S\) = \(2, 1, 3, 3\), "
                                         r"got \(2, 4, 3, 3\)"):
        atlas.to_transformers_mask(torch.ones(2, 4, 3, 3, dtype=torch.bool), 2, 3, 3)
    with pytest.raises(TypeError, match=r"mask: expected a boolean mask"):
        atlas.to_transformers_mask(torch.zeros(3, 3), 2, 3, 3)
    with pytest.raises(TypeError, match=r"dtype: expected a floating dtype, got torch.int64"):
        atlas.to_transformers_mask(torch.ones(3, 3, dtype=torch.bool), 2, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"mask: expected shape \(B, H, L, S\) with H=1"):
        atlas.from_transformers_mask(torch.zeros(2, 4, 3, 3))
    with pytest.raises(TypeError, match=r"mask: expected a boolean or floating-point mask, got torch.int64"):
        atlas.from_transformers_mask(torch.zeros(2, 1, 3, 3, dtype=torch.long))


def test_mask_mod_argument_errors():
    with pytest.raises(ValueError, match=r"align: expected one of \('bottom-right', 'top-left'\), got 'left'"):
        atlas.causal_mask_mod(3, align="left")
    with pytest.raises(ValueError, match=r"S: expected S >= L=4"):
        atlas.sliding_window_mask_mod(4, 2, window=2)
    with pytest.raises(ValueError, match=r"chunk_size: expected a positive int, got 0"):
        atlas.chunked_causal_mask_mod(4, chunk_size=0)
    with pytest.raises(TypeError, match=r"block_size: expected an int, got float 2.0"):
        atlas.block_causal_mask_mod(4, block_size=2.0)
    with pytest.raises(TypeError, match=r"prefix_lengths: expected an integer tensor, got torch.float32"):
        atlas.prefix_lm_mask_mod(torch.tensor([1.0]), 3)
    with pytest.raises(ValueError, match=r"seq_id: expected shape \(B, L\)"):
        atlas.seq_id_mask_mod(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"side: expected one of \('right', 'left'\), got 'top'"):
        atlas.padding_mask_mod(torch.tensor([1]), 3, side="top")
    with pytest.raises(ValueError, match=r"num_heads: expected a positive int, got 0"):
        atlas.alibi_score_mod(0, 3)
    with pytest.raises(ValueError, match=r"mask: expected a shape broadcastable to \(B, H, L, S\) = \(1, 2, 3, 3\)"):
        atlas.mask_mod_from_bool(torch.ones(3, 4, dtype=torch.bool), 1, 2, 3, 3)


# -- ALiBi against BLOOM -----------------------------------------------------------------------


@pytest.mark.parametrize("side", ["right", "left"])
def test_alibi_attention_equals_blooms(side):
    """BLOOM adds slope * (position of the key among the real tokens); attnref adds
    -slope * (query position - key position). They differ by a constant per row, which the
    softmax ignores, also with padding."""
    num_heads, S = 6, 7
    lengths = torch.tensor([7, 4, 1])
    pad_B11S = core.padding_mask(lengths, S, side=side)
    mask_B1SS = pad_B11S & core.causal_mask(S)
    bloom_BH1S = modeling_bloom.build_alibi_tensor(pad_B11S[:, 0, 0].long(), num_heads, torch.float32)
    bloom_BH1S = bloom_BH1S.view(B, num_heads, 1, S)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, num_heads, S, D, generator=gen) for _ in range(3))
    additive = core.bool_to_additive(mask_B1SS)
    ours = core.sdpa_reference(q, k, v, additive + core.alibi_bias(num_heads, S))
    bloom = core.sdpa_reference(q, k, v, additive + bloom_BH1S)
    real_B1S1 = pad_B11S[:, 0, 0, :, None].expand(B, S, 1)[:, None]  # rows of real query tokens
    torch.testing.assert_close(ours * real_B1S1, bloom * real_B1S1, atol=ATOL, rtol=0)


# -- the empty-row table of the masks page -----------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_the_masks_page_shows_the_measured_empty_row_table(lang):
    assert empty_rows.table(lang) in (DOCS / lang / "masks.md").read_text(encoding="utf-8")


def test_empty_row_table_of_the_page():
    assert empty_rows.measure() == {
        "core.attend(q, k, v, mask)": "zeros",
        "core.sdpa_reference(q, k, v, mask)": "zeros",
        "F.scaled_dot_product_attention(q, k, v, attn_mask=mask)": "zeros",
        "F.scaled_dot_product_attention(q, k, v, attn_mask=core.bool_to_additive(mask))": "zeros",
        "F.scaled_dot_product_attention(q, k, v, attn_mask=hf_eager_mask)": "uniform average",
        "flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, ...))": "zeros",
        "softmax(q @ k.mT * scale + core.bool_to_additive(mask)) @ v": "NaN",
        "softmax(q @ k.mT * scale + hf_eager_mask) @ v": "uniform average",
        "nn.MultiheadAttention(...)(q, k, v, attn_mask=~mask)": "NaN",
        "nn.MultiheadAttention(...)(q, k, v, attn_mask=~mask, need_weights=False)": "zeros",
    }


def test_the_table_rows_that_stand_for_transformers_are_transformers():
    """The page's hf_eager_mask rows are transformers' eager path; its sdpa path is the boolean row."""
    q, k, v, mask_LS = empty_rows.inputs()
    L, S = mask_LS.shape
    eager_row = dict(empty_rows.APIS)["softmax(q @ k.mT * scale + hf_eager_mask) @ v"](q, k, v, mask_LS)
    hf_eager = eager_attention_forward(_HFModule().eval(), q, k, v,
                                       atlas.to_transformers_mask(mask_LS, 1, L, S, dtype=q.dtype),
                                       scaling=empty_rows.D**-0.5)[0].transpose(1, 2)
    torch.testing.assert_close(hf_eager, eager_row, atol=ATOL, rtol=0)
    hf_sdpa = sdpa_attention_forward(_HFModule(), q, k, v, atlas.to_transformers_mask(mask_LS, 1, L, S))[0]
    assert empty_rows.classify(hf_sdpa.transpose(1, 2), v) == "zeros"


# -- packed sequences end to end ----------------------------------------------------------------

PACKED_LENGTHS = [4, 7, 3]


def _packed(E: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    parts = [torch.randn(1, n, E, generator=gen) for n in PACKED_LENGTHS]
    seq_id = torch.repeat_interleave(torch.arange(3), torch.tensor(PACKED_LENGTHS))[None]
    return parts, torch.cat(parts, dim=1), seq_id


def test_packed_esm_equals_each_sequence_alone():
    torch.manual_seed(0)
    module = esm.MultiHeadAttention(32, 4).eval()
    parts, x_packed, seq_id = _packed(32, seed=1)
    with torch.no_grad():
        packed = module(x_packed, seq_id)
        alone = torch.cat([module(x) for x in parts], dim=1)
        unmasked = module(x_packed)
    torch.testing.assert_close(packed, alone, atol=ATOL, rtol=0)
    assert (unmasked - alone).abs().max() > 0.05  # without seq_id the sequences mix


@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
def test_packed_llama_equals_each_sequence_alone(impl):
    torch.manual_seed(0)
    module = llama.LlamaAttention(32, 4, num_kv_heads=2).eval()
    module.attn_implementation = impl
    parts, x_packed, seq_id = _packed(32, seed=2)
    L = x_packed.shape[1]
    position_ids = torch.cat([torch.arange(n) for n in PACKED_LENGTHS])[None]
    document_B1LL = core.seq_id_mask(seq_id) & core.causal_mask(L)
    with torch.no_grad():
        packed = module(x_packed, position_ids=position_ids, attention_mask=document_B1LL)
        alone = torch.cat([module(x) for x in parts], dim=1)
        causal_only = module(x_packed, position_ids=position_ids)
    torch.testing.assert_close(packed, alone, atol=ATOL, rtol=0)
    assert (causal_only - alone)[:, PACKED_LENGTHS[0]:].abs().max() > 0.05  # later sequences see earlier ones
