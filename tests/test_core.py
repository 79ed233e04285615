"""attnref.core: the reference attention, masks, RoPE and repeat_kv that every module builds on."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.bloom.modeling_bloom import _get_alibi_slopes
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from attnref import core

torch.manual_seed(0)


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


# -- sdpa_reference ---------------------------------------------------------------------------


def test_reference_equals_the_formula_written_per_element():
    q, k, v = rand(2, 3, 4, 5), rand(2, 3, 6, 5), rand(2, 3, 6, 7)
    out, weights = core.sdpa_reference(q, k, v, return_weights=True)
    # One (b, h, i) row by hand: exp(q.k_j / sqrt(d)) normalised, then the weighted sum of v.
    b, h, i = 1, 2, 3
    logits = torch.tensor([float(q[b, h, i] @ k[b, h, j]) / math.sqrt(5) for j in range(6)], dtype=torch.float64)
    p = logits.exp() / logits.exp().sum()
    assert torch.allclose(weights[b, h, i], p)
    assert torch.allclose(out[b, h, i], (p[:, None] * v[b, h]).sum(0))
    assert out.shape == (2, 3, 4, 7) and weights.shape == (2, 3, 4, 6)


@pytest.mark.parametrize("L,S", [(5, 5), (3, 7), (1, 4)])
@pytest.mark.parametrize("mask_kind", [None, "bool", "additive"])
def test_reference_matches_torch_sdpa(L, S, mask_kind):
    q, k, v = rand(2, 3, L, 8), rand(2, 3, S, 8), rand(2, 3, S, 8)
    mask = None
    if mask_kind:
        mask = torch.rand(2, 1, L, S) > 0.3
        mask[..., 0] = True  # no fully masked row: torch and the reference agree there too, tested below
        if mask_kind == "additive":
            mask = core.bool_to_additive(mask, torch.float64)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(core.sdpa_reference(q, k, v, mask), expected, atol=1e-12)


def test_reference_scale_argument():
    q, k, v = rand(1, 1, 4, 8), rand(1, 1, 4, 8), rand(1, 1, 4, 8)
    expected = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert torch.allclose(core.sdpa_reference(q, k, v, scale=0.3), expected, atol=1e-12)


@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
@pytest.mark.parametrize("mask_kind", ["bool", "additive"])
def test_fully_masked_rows_give_zeros_not_nan(implementation, mask_kind):
    q, k, v = rand(1, 2, 3, 4), rand(1, 2, 5, 4), rand(1, 2, 5, 4)
    mask = torch.ones(1, 1, 3, 5, dtype=torch.bool)
    mask[..., 1, :] = False  # query 1 may attend to nothing
    if mask_kind == "additive":
        mask = core.bool_to_additive(mask, torch.float64)
    if mask_kind == "bool":
        out = core.attend(q, k, v, mask, implementation=implementation)
    else:
        with pytest.raises(TypeError, match=r"attn_mask: expected a boolean mask"):
            core.attend(q, k, v, mask, implementation=implementation)
        out = core.sdpa_reference(q, k, v, mask)
    assert not out.isnan().any()
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    _, weights = core.sdpa_reference(q, k, v, mask, return_weights=True)
    assert torch.equal(weights[:, :, 1], torch.zeros_like(weights[:, :, 1]))
    assert torch.allclose(weights[:, :, [0, 2]].sum(-1), torch.ones(1, 2, 2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_softmax_in_float32_and_casts_back(dtype):
    # Scores of 1e5 overflow float16 (max 65504) if computed in the input dtype.
    q = torch.full((1, 1, 2, 4), 200.0, dtype=dtype)
    k = torch.full((1, 1, 3, 4), 250.0, dtype=dtype)
    v = torch.randn(1, 1, 3, 4).to(dtype)
    out = core.sdpa_reference(q, k, v, scale=1.0)
    assert out.dtype == dtype and out.isfinite().all()
    assert torch.allclose(out.float(), v.float().mean(2, keepdim=True).expand(1, 1, 2, 4), atol=1e-2)


def test_dropout_in_the_reference_follows_the_seed_and_zero_is_exact():
    q, k, v = rand(1, 2, 4, 4), rand(1, 2, 4, 4), rand(1, 2, 4, 4)
    torch.manual_seed(3)
    a = core.sdpa_reference(q, k, v, dropout_p=0.5)
    torch.manual_seed(3)
    b = core.sdpa_reference(q, k, v, dropout_p=0.5)
    assert torch.equal(a, b)
    assert not torch.allclose(a, core.sdpa_reference(q, k, v))
    assert torch.equal(core.sdpa_reference(q, k, v, dropout_p=0.0), core.sdpa_reference(q, k, v))


def test_reference_gradcheck():
    q, k, v = (rand(1, 2, 3, 4).requires_grad_() for _ in range(3))
    mask = torch.tensor([[True, False, True], [True, True, True], [False, True, True]])
    assert torch.autograd.gradcheck(lambda *t: core.sdpa_reference(*t, mask, is_causal=False), (q, k, v))


# -- attend -----------------------------------------------------------------------------------


@pytest.mark.parametrize("L,S", [(6, 6), (2, 6), (1, 6)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_attend_implementations_agree_with_bottom_right_causality(L, S, with_mask):
    q, k, v = rand(2, 3, L, 8), rand(2, 3, S, 8), rand(2, 3, S, 8)
    mask = (torch.rand(2, 1, 1, S) > 0.2) if with_mask else None
    if mask is not None:
        mask[..., -1] = True
    fast = core.attend(q, k, v, mask, is_causal=True, implementation="sdpa")
    slow = core.attend(q, k, v, mask, is_causal=True, implementation="eager")
    assert torch.allclose(fast, slow, atol=1e-12)
    # The last query sees every key: bottom-right alignment.
    full = core.sdpa_reference(q, k, v, mask)
    assert torch.allclose(fast[:, :, -1], full[:, :, -1], atol=1e-12)


@pytest.mark.parametrize("is_causal", [False, True])
def test_attend_takes_a_1d_key_mask_on_both_paths(is_causal):
    # An (S,) mask broadcasts over batch, heads and queries; PyTorch's kernel alone would raise
    # a bare IndexError on it.
    q, k, v = rand(2, 3, 4, 8), rand(2, 3, 6, 8), rand(2, 3, 6, 8)
    keep_S = torch.tensor([True, False, True, True, False, True])
    fast = core.attend(q, k, v, keep_S, is_causal=is_causal, implementation="sdpa")
    slow = core.attend(q, k, v, keep_S, is_causal=is_causal, implementation="eager")
    assert torch.allclose(fast, slow, atol=1e-12)
    as_4d = core.attend(q, k, v, keep_S[None, None, None], is_causal=is_causal)
    assert torch.allclose(fast, as_4d, atol=1e-12)
    # Masked keys do not matter.
    v2 = v.clone()
    v2[:, :, ~keep_S] += 100
    assert torch.allclose(core.attend(q, k, v2, keep_S, is_causal=is_causal), fast, atol=1e-12)


@pytest.mark.parametrize("dtype,fix", [(torch.bool, r"mask\[:, None"), (torch.long, r"mask\.bool\(\)\[:, None")], ids=["bool", "int64"])
def test_a_2d_padding_mask_for_a_4d_one_points_to_padding_mask(dtype, fix):
    q, kv = rand(2, 3, 4, 8), rand(2, 3, 6, 8)
    keep_BS = torch.ones(2, 6, dtype=dtype)  # a tokenizer's attention_mask: (B, S)
    hint = rf"attn_mask: expected a shape broadcastable to \(B, H, L, S\) = \(2, 3, 4, 6\), got \(2, 6\); .*core.padding_mask\(lengths, S\) or write {fix}"
    for implementation in core.IMPLEMENTATIONS:
        with pytest.raises(ValueError, match=hint):
            core.attend(q, kv, kv, keep_BS, implementation=implementation)
    # sdpa_reference takes additive masks too; a float one is not turned into booleans.
    with pytest.raises(ValueError, match=r"padding_mask\(lengths, S\) or write mask\[:, None, None, :\]"):
        core.sdpa_reference(q, kv, kv, torch.zeros(2, 6))
    # The hint's fixes work.
    lengths = torch.tensor([6, 6])
    assert torch.equal(core.padding_mask(lengths, 6), keep_BS.bool()[:, None, None, :])
    core.attend(q, kv, kv, core.padding_mask(lengths, 6))


def test_attend_causality_future_keys_do_not_matter():
    q, k, v = rand(1, 2, 5, 4), rand(1, 2, 5, 4), rand(1, 2, 5, 4)
    out = core.attend(q, k, v, is_causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:] += 10
    v2[:, :, 3:] -= 10
    out2 = core.attend(q, k2, v2, is_causal=True)
    assert torch.allclose(out[:, :, :3], out2[:, :, :3], atol=1e-12)
    assert not torch.allclose(out[:, :, 3:], out2[:, :, 3:])


def test_attend_rejects_unknown_implementation():
    q = rand(1, 1, 2, 4)
    with pytest.raises(ValueError, match=r"implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        core.attend(q, q, q, implementation="flash")


# -- masks ------------------------------------------------------------------------------------


def test_causal_mask_square_and_bottom_right():
    assert torch.equal(core.causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    m = core.causal_mask(2, 5)
    assert torch.equal(m, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    # PyTorch's is_causal is top-left aligned: for S > L it hides keys the new tokens must see.
    top_left = torch.ones(2, 5, dtype=torch.bool).tril()
    assert not torch.equal(m, top_left)


@pytest.mark.parametrize("L,S", [(4, 4), (2, 5), (5, 2), (1, 3)])
def test_causal_mask_top_left_is_pytorchs_is_causal(L, S):
    """Top-left: query i sees keys 0..i whatever S is, as is_causal=True does; any S is allowed."""
    m = core.causal_mask(L, S, align="top-left")
    assert torch.equal(m, torch.arange(S)[None, :] <= torch.arange(L)[:, None])
    q, k, v = rand(1, 2, L, 4), rand(1, 2, S, 4), rand(1, 2, S, 4)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(core.sdpa_reference(q, k, v, m), expected, atol=1e-12)
    if S >= L:
        assert torch.equal(m, core.causal_mask(L, S)) == (S == L)


def test_causal_mask_errors():
    with pytest.raises(ValueError, match=r"S: expected S >= L=4.*got 2"):
        core.causal_mask(4, 2)
    with pytest.raises(TypeError, match=r"L: expected an int, got float 3.0"):
        core.causal_mask(3.0)
    with pytest.raises(ValueError, match=r"L: expected a positive int, got 0"):
        core.causal_mask(0)
    with pytest.raises(ValueError, match=r"align: expected one of \('bottom-right', 'top-left'\), got 'top'"):
        core.causal_mask(3, align="top")
    with pytest.raises(ValueError, match=r"S: expected a positive int, got 0"):
        core.causal_mask(3, 0, align="top-left")


@pytest.mark.parametrize("L,S,window", [(6, 6, 3), (1, 9, 4), (3, 8, 2), (4, 4, 1), (2, 5, 10)])
def test_sliding_window_mask_matches_the_rule_written_out(L, S, window):
    """Query i at absolute position p = S - L + i sees keys j with p - window < j <= p."""
    m = core.sliding_window_mask(L, S, window=window)
    p = torch.arange(S - L, S)[:, None]
    j = torch.arange(S)[None, :]
    assert torch.equal(m, (j <= p) & (j > p - window))
    assert m.sum(-1).tolist() == [min(window, S - L + i + 1) for i in range(L)]


def test_sliding_window_mask_decoding_equals_slices_of_the_full_mask():
    """With a cache, the rows of the new tokens are the last rows of the full prefill mask."""
    full = core.sliding_window_mask(10, window=4)
    for past in range(10):
        assert torch.equal(core.sliding_window_mask(1, past + 1, window=4), full[past : past + 1, : past + 1])
    assert torch.equal(core.sliding_window_mask(5, 7, window=7), core.causal_mask(5, 7))


def test_sliding_window_mask_errors():
    with pytest.raises(ValueError, match=r"window: expected a positive int, got 0"):
        core.sliding_window_mask(3, window=0)
    with pytest.raises(ValueError, match=r"S: expected S >= L=4.*got 2"):
        core.sliding_window_mask(4, 2, window=2)


def test_seq_id_mask_is_block_diagonal():
    seq_id = torch.tensor([[0, 0, 1, 1, 1, 2]])
    m = core.seq_id_mask(seq_id)
    assert m.shape == (1, 1, 6, 6)
    expected = torch.block_diag(torch.ones(2, 2), torch.ones(3, 3), torch.ones(1, 1)).bool()
    assert torch.equal(m[0, 0], expected)
    with pytest.raises(ValueError, match=r"seq_id: expected shape \(B, L\) \(2 dims\), got \(6\) \(1 dims\)"):
        core.seq_id_mask(seq_id[0])
    with pytest.raises(TypeError, match=r"seq_id: expected an integer or boolean tensor.*float32"):
        core.seq_id_mask(seq_id.float())


@pytest.mark.parametrize("L,S,chunk_size", [(7, 7, 3), (3, 8, 3), (1, 9, 4), (5, 5, 1), (4, 6, 10)])
def test_chunked_causal_mask_matches_the_rule_written_out(L, S, chunk_size):
    """Query i at position p = S - L + i sees keys j <= p in its own chunk: j // c == p // c."""
    m = core.chunked_causal_mask(L, S, chunk_size=chunk_size)
    p = torch.arange(S - L, S)[:, None]
    j = torch.arange(S)[None, :]
    assert torch.equal(m, (j <= p) & (j // chunk_size == p // chunk_size))
    assert m.sum(-1).tolist() == [(S - L + i) % chunk_size + 1 for i in range(L)]
    if chunk_size >= S:
        assert torch.equal(m, core.causal_mask(L, S))


def test_chunked_causal_mask_is_not_a_sliding_window():
    # The first token of a chunk sees only itself; a window of the same size sees the past.
    chunked = core.chunked_causal_mask(8, chunk_size=4)
    window = core.sliding_window_mask(8, window=4)
    assert chunked[4].tolist() == [False] * 4 + [True] + [False] * 3
    assert window[4].sum() == 4
    assert torch.equal(core.chunked_causal_mask(6, chunk_size=1), torch.eye(6, dtype=torch.bool))


@pytest.mark.parametrize("L,S,block_size", [(7, 7, 3), (3, 8, 3), (1, 9, 4), (5, 5, 1), (4, 6, 10)])
def test_block_causal_mask_matches_the_rule_written_out(L, S, block_size):
    """Query i at position p sees every key j whose block is not after its own: j // b <= p // b."""
    m = core.block_causal_mask(L, S, block_size=block_size)
    p = torch.arange(S - L, S)[:, None]
    j = torch.arange(S)[None, :]
    assert torch.equal(m, j // block_size <= p // block_size)
    assert m[core.causal_mask(L, S)].all()  # never less than causal
    if block_size == 1:
        assert torch.equal(m, core.causal_mask(L, S))
    if block_size >= S:
        assert m.all()


@pytest.mark.parametrize("L,S", [(6, 6), (2, 7)])
def test_prefix_lm_mask_matches_the_rule_written_out(L, S):
    prefix = torch.tensor([0, 3, S])
    m = core.prefix_lm_mask(prefix, L, S)
    assert m.shape == (3, 1, L, S) and m.dtype == torch.bool
    p = torch.arange(S - L, S)[:, None]
    j = torch.arange(S)[None, :]
    for b, n in enumerate(prefix.tolist()):
        assert torch.equal(m[b, 0], (j <= p) | (j < n))
    assert torch.equal(m[0, 0], core.causal_mask(L, S))  # no prefix: causal
    assert m[2].all()  # all prefix: bidirectional
    if L == S:  # a prefix token sees the prefix tokens after it, and nothing beyond the prefix
        assert m[1, 0, 0].tolist() == [True, True, True] + [False] * (S - 3)


def test_new_mask_errors():
    with pytest.raises(ValueError, match=r"chunk_size: expected a positive int, got 0"):
        core.chunked_causal_mask(3, chunk_size=0)
    with pytest.raises(ValueError, match=r"S: expected S >= L=4.*got 2"):
        core.chunked_causal_mask(4, 2, chunk_size=2)
    with pytest.raises(TypeError, match=r"block_size: expected an int, got float 2.0"):
        core.block_causal_mask(3, block_size=2.0)
    with pytest.raises(ValueError, match=r"S: expected S >= L=4.*got 2"):
        core.block_causal_mask(4, 2, block_size=2)
    with pytest.raises(TypeError, match=r"prefix_lengths: expected an integer tensor, got torch.float32"):
        core.prefix_lm_mask(torch.tensor([1.0]), 3)
    with pytest.raises(ValueError, match=r"prefix_lengths: expected shape \(B\) \(1 dims\), got \(1, 2\)"):
        core.prefix_lm_mask(torch.tensor([[1, 2]]), 3)
    with pytest.raises(ValueError, match=r"side: expected one of \('right', 'left'\), got 'middle'"):
        core.padding_mask(torch.tensor([1]), 3, side="middle")


def test_seq_id_mask_padding_is_its_own_sequence():
    """ESM C's boolean seq_id (True on real tokens, False on pads): pads attend only to pads, real
    tokens never to pads, no row is empty, and the real tokens' outputs are those of the unpadded
    batch. Giving the pads the id of a real sequence makes them join it."""
    tokens_real = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    m = core.seq_id_mask(tokens_real)[:, 0]
    assert not m[0, :4, 4:].any() and not m[0, 4:, :4].any()  # no real-pad pair either way
    assert m[0, 4:, 4:].all()  # pads attend to pads
    assert m.any(-1).all()  # no row is fully masked
    q, k, v = rand(2, 2, 6, 8), rand(2, 2, 6, 8), rand(2, 2, 6, 8)
    out = core.attend(q, k, v, core.seq_id_mask(tokens_real))
    assert not out.isnan().any()
    assert torch.allclose(out[:1, :, :4], core.attend(q[:1, :, :4], k[:1, :, :4], v[:1, :, :4]), atol=1e-12)
    # Packed ids with the pads given id 0, the first sequence's: they leak into it.
    leaky = torch.tensor([[0, 0, 1, 1, 0, 0]])
    separate = torch.tensor([[0, 0, 1, 1, -1, -1]])
    alone = core.attend(q[:1, :, :2], k[:1, :, :2], v[:1, :, :2])
    assert torch.allclose(core.attend(q[:1], k[:1], v[:1], core.seq_id_mask(separate))[:, :, :2], alone, atol=1e-12)
    assert not torch.allclose(core.attend(q[:1], k[:1], v[:1], core.seq_id_mask(leaky))[:, :, :2], alone)


def test_padding_mask_and_zero_length_sequence():
    m = core.padding_mask(torch.tensor([3, 0, 5]), 5)
    assert m.shape == (3, 1, 1, 5)
    assert m[0, 0, 0].tolist() == [True, True, True, False, False]
    assert not m[1].any()
    q, k, v = rand(3, 2, 4, 8), rand(3, 2, 5, 8), rand(3, 2, 5, 8)
    for implementation in core.IMPLEMENTATIONS:
        out = core.attend(q, k, v, m, implementation=implementation)
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        assert torch.allclose(out[0], core.sdpa_reference(q[:1], k[:1, :, :3], v[:1, :, :3])[0], atol=1e-12)
    with pytest.raises(TypeError, match=r"lengths: expected an integer tensor, got torch.float32"):
        core.padding_mask(torch.tensor([1.0]), 3)


def test_left_padding_mask_and_causal_rows_of_pad_queries():
    lengths = torch.tensor([3, 0, 5])
    left = core.padding_mask(lengths, 5, side="left")
    assert left[:, 0, 0].int().tolist() == [[0, 0, 1, 1, 1], [0] * 5, [1] * 5]
    assert torch.equal(left, core.padding_mask(lengths, 5).flip(-1))
    # Under a causal mask the pad queries of a left-padded row see no key: zeros, not NaN.
    q, k, v = rand(3, 2, 5, 8), rand(3, 2, 5, 8), rand(3, 2, 5, 8)
    for implementation in core.IMPLEMENTATIONS:
        out = core.attend(q, k, v, left, is_causal=True, implementation=implementation)
        assert torch.equal(out[0, :, :2], torch.zeros_like(out[0, :, :2]))
        expected = core.attend(q[:1, :, 2:], k[:1, :, 2:], v[:1, :, 2:], is_causal=True)
        assert torch.allclose(out[:1, :, 2:], expected, atol=1e-12)


def test_alibi_slopes_follow_the_paper_and_bloom():
    # Powers of two: the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8).
    assert core.alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    assert core.alibi_slopes(1).tolist() == [2.0**-8]
    # Otherwise: the slopes of the largest power of two below, then every other slope of twice it.
    assert torch.equal(core.alibi_slopes(12), torch.cat((core.alibi_slopes(8), core.alibi_slopes(16)[0::2][:4])))
    for num_heads in range(1, 70):
        # BLOOM raises a float32 base to integer powers: equal up to float32 rounding.
        torch.testing.assert_close(core.alibi_slopes(num_heads), _get_alibi_slopes(num_heads, "cpu"),
                                   rtol=1e-6, atol=0)


def test_alibi_bias_is_minus_slope_times_distance():
    bias = core.alibi_bias(3, 2, 5)
    assert bias.shape == (3, 2, 5) and bias.dtype == torch.float32
    slopes = core.alibi_slopes(3)
    p = torch.arange(3, 5)[:, None]  # bottom-right query positions
    j = torch.arange(5)[None, :]
    assert torch.equal(bias, -slopes[:, None, None] * (p - j))
    assert torch.equal(bias[:, :, -2:].diagonal(dim1=-2, dim2=-1), torch.zeros(3, 2))  # a query and itself
    with pytest.raises(ValueError, match=r"num_heads: expected a positive int, got 0"):
        core.alibi_bias(0, 3)
    with pytest.raises(ValueError, match=r"S: expected S >= L=3.*got 2"):
        core.alibi_bias(2, 3, 2)


def test_bool_and_additive_round_trip():
    m = torch.rand(2, 1, 3, 4) > 0.5
    add = core.bool_to_additive(m)
    assert add.dtype == torch.float32
    assert torch.equal(add == 0, m) and torch.isneginf(add[~m]).all()
    assert torch.equal(core.additive_to_bool(add), m)
    hf_style = torch.zeros(3).masked_fill(torch.tensor([False, True, False]), torch.finfo(torch.float32).min)
    assert core.additive_to_bool(hf_style).tolist() == [True, False, True]
    with pytest.raises(TypeError, match=r"mask: expected a boolean mask .*got torch.float32"):
        core.bool_to_additive(add)
    with pytest.raises(TypeError, match=r"mask: expected a floating-point tensor, got torch.bool"):
        core.additive_to_bool(m)


# -- argument checks --------------------------------------------------------------------------


def test_reference_bad_inputs_name_the_argument():
    q = rand(2, 3, 4, 8)
    with pytest.raises(ValueError, match=r"k: expected head dim 8 \(that of q\), got 6"):
        core.sdpa_reference(q, rand(2, 3, 4, 6), rand(2, 3, 4, 8))
    with pytest.raises(ValueError, match=r"k: expected leading dims \(2, 3\).*got \(2, 1, 4, 8\)"):
        core.sdpa_reference(q, rand(2, 1, 4, 8), rand(2, 1, 4, 8))
    with pytest.raises(ValueError, match=r"v: expected length 4 \(that of k\), got 5"):
        core.sdpa_reference(q, q, rand(2, 3, 5, 8))
    with pytest.raises(TypeError, match=r"k: expected dtype torch.float64 \(the dtype of q\), got torch.float32"):
        core.sdpa_reference(q, q.float(), q)
    with pytest.raises(ValueError, match=r"attn_mask: expected a shape broadcastable to .* = \(2, 3, 4, 4\), got \(4, 5\)"):
        core.sdpa_reference(q, q, q, torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"attn_mask: expected a boolean or floating-point mask, got torch.int64"):
        core.sdpa_reference(q, q, q, torch.ones(4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"q: expected a torch.Tensor, got list"):
        core.sdpa_reference([1.0], q, q)
    with pytest.raises(ValueError, match=r"dropout_p: expected a float in \[0, 1\), got 1.5"):
        core.sdpa_reference(q, q, q, dropout_p=1.5)


# -- RoPE -------------------------------------------------------------------------------------


def test_rope_angles_formula_and_dtype():
    pos = torch.arange(6)
    ang = core.rope_angles(pos, 8, theta=100.0)
    assert ang.shape == (6, 4) and ang.dtype == torch.float32
    expected = torch.tensor([[m * 100.0 ** (-2 * i / 8) for i in range(4)] for m in range(6)])
    assert torch.allclose(ang, expected)
    assert core.rope_angles(pos, 8, dtype=torch.float64).dtype == torch.float64
    assert torch.allclose(core.rope_angles(pos, 8, scaling_factor=2.0), core.rope_angles(pos / 2, 8))


def test_rope_angles_stay_precise_for_half_precision_positions():
    # In bfloat16, 2047 and 2048 are the same number; angles from float32 positions keep them apart.
    pos = torch.tensor([2047, 2048])
    assert torch.tensor(2047.0, dtype=torch.bfloat16) == torch.tensor(2048.0, dtype=torch.bfloat16)
    ang = core.rope_angles(pos, 4)
    assert ang[0, 0] != ang[1, 0]


def test_rope_errors():
    with pytest.raises(ValueError, match=r"dim: expected an even number .*got 7"):
        core.rope_angles(torch.arange(3), 7)
    with pytest.raises(ValueError, match=r"x.shape\[-1\]: expected an even number .*got 5"):
        core.apply_rope_half_split(rand(2, 5), rand(2, 2), rand(2, 2))
    with pytest.raises(ValueError, match=r"cos: expected a shape broadcastable to .* = \(3, 4\), got \(2, 4\)"):
        core.apply_rope_adjacent(rand(3, 8), rand(2, 4), rand(2, 4))
    with pytest.raises(TypeError, match=r"dtype: expected torch.float32 or torch.float64, got torch.float16"):
        core.rope_angles(torch.arange(3), 4, dtype=torch.float16)


def test_both_conventions_are_rotations_of_pairs():
    x = rand(3, 8)
    ang = core.rope_angles(torch.arange(3), 8, dtype=torch.float64)
    adj = core.apply_rope_adjacent(x, ang.cos(), ang.sin())
    half = core.apply_rope_half_split(x, ang.cos(), ang.sin())
    # Adjacent pairs: the complex product (x0 + i x1) e^{i angle}.
    xc = torch.view_as_complex(x.reshape(3, 4, 2).contiguous())
    assert torch.allclose(adj, torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)).flatten(-2))
    # Half-split: the same rotation on pairs (i, i + D/2).
    xh = torch.complex(x[:, :4], x[:, 4:]) * torch.polar(torch.ones_like(ang), ang)
    assert torch.allclose(half, torch.cat([xh.real, xh.imag], -1))
    assert torch.allclose(adj.norm(dim=-1), x.norm(dim=-1)) and torch.allclose(half.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(core.rotate_half(torch.arange(4.0)), torch.tensor([-2.0, -3.0, 0.0, 1.0]))


def test_rope_scores_depend_only_on_relative_position():
    q, k = rand(8), rand(8)

    def score(m, n):
        ang = core.rope_angles(torch.tensor([m, n]), 8, dtype=torch.float64)
        rq = core.apply_rope_half_split(q, ang[0].cos(), ang[0].sin())
        rk = core.apply_rope_half_split(k, ang[1].cos(), ang[1].sin())
        return float(rq @ rk)

    assert math.isclose(score(3, 1), score(10, 8), rel_tol=1e-12)
    assert not math.isclose(score(3, 1), score(3, 2), rel_tol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rope_rotation_runs_in_float32(dtype):
    x = torch.randn(4, 16)
    ang = core.rope_angles(torch.arange(4) * 500, 16)
    low = core.apply_rope_half_split(x.to(dtype), ang.cos(), ang.sin())
    assert low.dtype == dtype
    exact = core.apply_rope_half_split(x.to(dtype).float(), ang.cos(), ang.sin())
    assert torch.equal(low, exact.to(dtype))


@pytest.mark.parametrize("n_heads,head_dim", [(1, 4), (3, 8)])
def test_row_permutation_maps_adjacent_rope_onto_half_split(n_heads, head_dim):
    E = 6
    w = rand(n_heads * head_dim, E)
    x = rand(5, E)
    ang = core.rope_angles(torch.arange(5), head_dim, dtype=torch.float64)
    cos, sin = ang.cos()[:, None], ang.sin()[:, None]
    meta = core.apply_rope_adjacent((x @ w.T).unflatten(-1, (n_heads, head_dim)), cos, sin)
    hf = core.apply_rope_half_split((x @ core.adjacent_to_half_split(w, n_heads).T).unflatten(-1, (n_heads, head_dim)), cos, sin)
    # The same numbers, in the half-split channel order: dot products (scores) are identical.
    assert torch.allclose(core.adjacent_to_half_split(meta.flatten(-2).T, n_heads).T, hf.flatten(-2))
    assert torch.equal(core.half_split_to_adjacent(core.adjacent_to_half_split(w, n_heads), n_heads), w)
    b = rand(n_heads * head_dim)
    assert torch.equal(core.half_split_to_adjacent(core.adjacent_to_half_split(b, n_heads), n_heads), b)


def test_row_permutation_on_one_head_of_four_channels():
    w = torch.arange(4.0)[:, None]
    assert core.adjacent_to_half_split(w, 1).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]
    with pytest.raises(ValueError, match=r"w.shape\[0\]: expected a multiple of n_heads=3, got 4"):
        core.adjacent_to_half_split(w, 3)
    with pytest.raises(ValueError, match=r"head dim w.shape\[0\] // n_heads: expected an even number.*got 3"):
        core.adjacent_to_half_split(torch.zeros(6, 2), 2)


# -- RoPE scaling: rope_inv_freq against transformers' own init functions (transformers 5.25.0) -------

LONG = [1.0 + 0.5 * i for i in range(8)]
SHORT = [1.0 + 0.05 * i for i in range(8)]
INV_FREQ_CASES = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 3.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
    "yarn-options": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "attention_factor": 0.9,
                     "beta_fast": 8, "beta_slow": 2, "truncate": False},
    "yarn-mscale": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                    "mscale": 0.707, "mscale_all_dim": 1.0},
    "yarn-factor-from-lengths": {"rope_type": "yarn", "factor": None, "original_max_position_embeddings": 32},
    "longrope": {"rope_type": "longrope", "factor": 2.0, "original_max_position_embeddings": 64,
                 "short_factor": SHORT, "long_factor": LONG},
    "longrope-factor-from-lengths": {"rope_type": "longrope", "original_max_position_embeddings": 32,
                                     "short_factor": SHORT, "long_factor": LONG},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
    "llama3-original-from-config": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0},
    "legacy-type-key": {"type": "linear", "factor": 2.0},
}


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
@pytest.mark.parametrize("name", INV_FREQ_CASES)
def test_rope_inv_freq_equals_transformers(name, theta):
    """Bit for bit, at model init and for sequences inside, across and past the original context
    (original_max_position_embeddings 32 or 64, max_position_embeddings 128)."""
    params = dict(INV_FREQ_CASES[name], rope_theta=theta)
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=128, rope_parameters=dict(params))
    rope_type = config.rope_parameters["rope_type"]
    for seq_len in (None, 20, 100, 300):
        if rope_type == "default":
            expected, expected_scaling = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
        else:  # as LlamaRotaryEmbedding calls it: at init without seq_len, in the forward with a tensor
            seen = None if seq_len is None else torch.tensor(seq_len)
            expected, expected_scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=seen)
        inv_freq, scaling = core.rope_inv_freq(params, 16, max_position_embeddings=128, seq_len=seq_len)
        assert inv_freq.dtype == torch.float32 and inv_freq.shape == (8,)
        assert torch.equal(inv_freq, expected), seq_len
        assert scaling == expected_scaling, seq_len


def test_rope_inv_freq_depends_on_the_sequence_only_where_transformers_does():
    def inv(name, seq_len):
        return core.rope_inv_freq(INV_FREQ_CASES[name], 16, max_position_embeddings=128, seq_len=seq_len)[0]

    default = core.rope_angles(torch.ones(()), 16)
    assert torch.equal(inv("default", None), default)
    assert torch.equal(inv("dynamic", 128), default)  # up to max_position_embeddings: plain RoPE
    assert (inv("dynamic", 300)[1:] < default[1:]).all()  # past it: the base grows, every pair but 0 slows
    assert torch.equal(inv("longrope", 64), inv("longrope", None))
    assert not torch.equal(inv("longrope", 65), inv("longrope", None))  # long_factor past the original context
    for name in ("linear", "yarn", "llama3"):
        assert torch.equal(inv(name, 20), inv(name, 300))


@pytest.mark.parametrize(
    "params,kwargs,error,match",
    [
        ({"rope_type": "ntk"}, {}, ValueError, r"rope_parameters: expected a rope_type in \(.*'llama3'\), got rope_type 'ntk'"),
        ({"rope_type": "yarn"}, {}, ValueError,
         r"rope_parameters: expected a value for 'original_max_position_embeddings' \(rope_type 'yarn'\), got keys \['rope_type'\]"),
        ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 64}, {}, ValueError,
         r"rope_parameters: expected a value for 'low_freq_factor'"),
        ({"rope_type": "dynamic", "factor": 2.0}, {}, ValueError,
         r"max_position_embeddings: expected the config's context length \(rope_type 'dynamic' needs it\), got None"),
        ({"rope_type": "longrope", "original_max_position_embeddings": 64, "factor": 2.0, "short_factor": [1.0] * 3,
          "long_factor": LONG}, {}, ValueError, r"rope_parameters: expected short_factor of length dim / 2 = 8, got length 3"),
        ({"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5}, {}, ValueError,
         r"rope_parameters: expected partial_rotary_factor 1.0 .*got 0.5"),
        ({"rope_theta": -1.0}, {}, ValueError, r"rope_parameters\['rope_theta'\]: expected a positive number, got -1.0"),
        ("linear", {}, TypeError, r"rope_parameters: expected a dict .*got str"),
        ({}, {"seq_len": 0}, ValueError, r"seq_len: expected a positive int, got 0"),
    ],
)
def test_rope_inv_freq_errors(params, kwargs, error, match):
    with pytest.raises(error, match=match):
        core.rope_inv_freq(params, 16, **kwargs)


# -- repeat_kv --------------------------------------------------------------------------------


def test_repeat_kv_groups_heads_in_place():
    x = torch.arange(2.0).reshape(1, 2, 1, 1).expand(1, 2, 3, 4)
    out = core.repeat_kv(x, 3)
    assert out.shape == (1, 6, 3, 4)
    assert out[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert core.repeat_kv(x, 1) is x
    with pytest.raises(ValueError, match=r"x: expected shape \(B, G, S, D\) \(4 dims\), got \(2, 3, 4\)"):
        core.repeat_kv(torch.zeros(2, 3, 4), 2)
    with pytest.raises(ValueError, match=r"n_rep: expected a positive int, got 0"):
        core.repeat_kv(x, 0)
