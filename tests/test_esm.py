"""attnref.esm against the installed upstream `esm` package and against attnref.core."""

import copy

import pytest
import torch

import esm.layers.attention as upstream_attention
import esm.layers.rotary as upstream_rotary
from attnref import core
from attnref.esm import MultiHeadAttention, RotaryEmbedding

# Half-precision forward against float32, as max |error| / max |float32 output|. The error is
# dominated by rounding q/k/v, the weights and the output to the half dtype (unit roundoff 2^-11
# for float16, 2^-8 for bfloat16) and accumulating over the model dim; we allow 4 unit roundoffs
# of the output's scale (measured here: about 1.3 for both).
HALF_RTOL = {torch.float16: 4 * 2.0**-11, torch.bfloat16: 4 * 2.0**-8}

E, H = 16, 2
PACKED = [[0, 0, 0, 1, 1, 2]]


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random, so LayerNorm weights of 1 and biases of 0 hide nothing."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    return module


def inputs(B=2, L=6, dtype=torch.float32, seed=1):
    return torch.randn(B, L, E, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def seq_ids(kind, B=2):
    return None if kind is None else torch.tensor(PACKED * B)


# -- parity with upstream --------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("qk_layernorm", [True, False])
@pytest.mark.parametrize("seq_kind", [None, "packed"])
def test_matches_upstream_both_ways(bias, qk_layernorm, seq_kind):
    ours = randomised(MultiHeadAttention(E, H, bias=bias, qk_layernorm=qk_layernorm))
    theirs = upstream_attention.MultiHeadAttention(E, H, bias=bias, qk_layernorm=qk_layernorm)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, seq_id = inputs(), seq_ids(seq_kind)
    torch.testing.assert_close(ours(x, seq_id), theirs(x, seq_id), atol=1e-5, rtol=1e-5)

    randomised(theirs, seed=7)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(ours(x, seq_id), theirs(x, seq_id), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("qk_layernorm", [True, False])
def test_state_dict_keys(bias, qk_layernorm):
    keys = set(MultiHeadAttention(E, H, bias=bias, qk_layernorm=qk_layernorm).state_dict())
    expected = {"layernorm_qkv.0.weight", "layernorm_qkv.0.bias", "layernorm_qkv.1.weight", "out_proj.weight"}
    if qk_layernorm:
        expected |= {"q_ln.weight", "k_ln.weight"}
    if bias:
        expected |= {"layernorm_qkv.1.bias", "out_proj.bias"} | ({"q_ln.bias", "k_ln.bias"} if qk_layernorm else set())
    assert keys == expected  # no rotary keys: inv_freq is a non-persistent buffer


@pytest.mark.parametrize("dim,base,scaling_factor", [(8, 10000.0, 1.0), (6, 500.0, 2.5)])
@pytest.mark.parametrize("seqlen_offset", [0, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotary_matches_upstream(dim, base, scaling_factor, seqlen_offset, dtype):
    ours = RotaryEmbedding(dim, base=base, scaling_factor=scaling_factor)
    theirs = upstream_rotary.RotaryEmbedding(dim, base=base, scaling_factor=scaling_factor)
    torch.testing.assert_close(ours.inv_freq, theirs.inv_freq, atol=0, rtol=0)
    assert "inv_freq" not in ours.state_dict()
    q, k = torch.randn(2, 5, 3, dim, dtype=dtype), torch.randn(2, 5, 3, dim, dtype=dtype)
    for got, want in zip(ours(q, k, seqlen_offset), theirs(q, k, seqlen_offset)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_rotary_cache_is_reused_and_refreshed():
    rotary = RotaryEmbedding(8)
    theirs = upstream_rotary.RotaryEmbedding(8)
    q = torch.randn(1, 4, 2, 8)
    rotary(q, q)
    table = rotary._cos_cached
    rotary(q[:, :2], q[:, :2], seqlen_offset=1)
    assert rotary._cos_cached is table  # shorter request: same table, no recomputation
    long = torch.randn(1, 9, 2, 8)
    torch.testing.assert_close(rotary(long, long)[0], theirs(long, long)[0], atol=1e-6, rtol=1e-6)
    assert rotary._cos_cached.shape == (9, 4)
    rotary(long.double(), long.double())
    assert rotary._cos_cached.dtype == torch.float64  # other dtype: recomputed


# -- kernels and the reference ---------------------------------------------------------------------


def composed_reference(module: MultiHeadAttention, x: torch.Tensor, seq_id) -> torch.Tensor:
    """The forward written out with core's pieces, without the rotary cache or core.attend."""
    q, k, v = module.layernorm_qkv(x).chunk(3, dim=-1)
    q, k = module.q_ln(q), module.k_ln(k)
    B, L, _ = x.shape
    q, k, v = (t.reshape(B, L, H, E // H).transpose(1, 2) for t in (q, k, v))
    angles = core.rope_angles(torch.arange(L), E // H, 10000.0, dtype=torch.float32)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    q, k = core.apply_rope_half_split(q, cos, sin), core.apply_rope_half_split(k, cos, sin)
    mask = None if seq_id is None else core.seq_id_mask(seq_id)
    out = core.sdpa_reference(q, k, v, mask)
    return module.out_proj(out.transpose(1, 2).reshape(B, L, E))


@pytest.mark.parametrize("seq_kind", [None, "packed"])
def test_sdpa_eager_and_reference_agree_in_float64(seq_kind):
    module = randomised(MultiHeadAttention(E, H, bias=True)).double()
    x, seq_id = inputs(dtype=torch.float64), seq_ids(seq_kind)
    sdpa = module(x, seq_id)
    module.attn_implementation = "eager"
    eager = module(x, seq_id)
    reference = composed_reference(module, x, seq_id)
    torch.testing.assert_close(sdpa, eager, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(sdpa, reference, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(eager, reference, atol=1e-12, rtol=1e-12)
    assert MultiHeadAttention.attn_implementation == "sdpa"  # the instance setting stays local


@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
def test_seq_id_blocks_cross_sequence_attention(implementation):
    module = randomised(MultiHeadAttention(E, H)).double()
    module.attn_implementation = implementation
    seq_id = torch.tensor(PACKED)
    x = inputs(B=1, dtype=torch.float64)
    changed = x.clone()
    changed[:, 3:5] = torch.randn(1, 2, E, dtype=torch.float64)  # tokens of sequence 1
    out, out_changed = module(x, seq_id), module(changed, seq_id)
    torch.testing.assert_close(out_changed[:, :3], out[:, :3], atol=1e-12, rtol=0)  # sequence 0
    torch.testing.assert_close(out_changed[:, 5:], out[:, 5:], atol=1e-12, rtol=0)  # sequence 2
    assert not torch.allclose(out_changed[:, 3:5], out[:, 3:5])
    # Without seq_id every token sees every other, so sequence 0 does change.
    assert not torch.allclose(module(changed)[:, :3], module(x)[:, :3])


@pytest.mark.parametrize("seq_kind", [None, "packed"])
def test_gradcheck_through_the_eager_path(seq_kind):
    module = randomised(MultiHeadAttention(4, 2, bias=True)).double()
    module.attn_implementation = "eager"
    x = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    seq_id = None if seq_kind is None else torch.tensor(PACKED)
    assert torch.autograd.gradcheck(lambda t: module(t, seq_id), (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float32(dtype):
    module = randomised(MultiHeadAttention(E, H, bias=True))
    x, seq_id = inputs(), seq_ids("packed")
    reference = module(x, seq_id)
    half = copy.deepcopy(module).to(dtype)
    out = half(x.to(dtype), seq_id)
    assert out.dtype == dtype
    error = (out.float() - reference).abs().max() / reference.abs().max()
    assert error <= HALF_RTOL[dtype], f"{dtype}: relative error {error:.2e} > {HALF_RTOL[dtype]:.2e}"


def test_deterministic():
    module = randomised(MultiHeadAttention(E, H)).train()  # no dropout even in training mode
    x, seq_id = inputs(), seq_ids("packed")
    assert torch.equal(module(x, seq_id), module(x, seq_id))


# -- bad input -------------------------------------------------------------------------------------


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"d_model: expected a multiple of n_heads=3, got 16"):
        MultiHeadAttention(16, 3)
    with pytest.raises(ValueError, match=r"head dim d_model // n_heads: expected an even number .*got 3"):
        MultiHeadAttention(6, 2)
    with pytest.raises(TypeError, match=r"n_heads: expected an int, got float 2.0"):
        MultiHeadAttention(16, 2.0)
    with pytest.raises(ValueError, match=r"dim: expected an even number .*got 5"):
        RotaryEmbedding(5)
    with pytest.raises(ValueError, match=r"scaling_factor: expected a positive number, got 0"):
        RotaryEmbedding(4, scaling_factor=0)


def test_bad_forward_arguments():
    module = MultiHeadAttention(E, H)
    x = inputs()
    with pytest.raises(ValueError, match=r"x: expected shape \(B, L, E\) with E=16 \(3 dims\), got \(6, 16\) \(2 dims\)"):
        module(x[0])
    with pytest.raises(ValueError, match=r"x: expected shape \(B, L, E\) with E=16, got \(2, 6, 8\)"):
        module(x[..., :8])
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 .*got torch.float64"):
        module(x.double())
    with pytest.raises(TypeError, match=r"x: expected a floating-point tensor, got torch.int64"):
        module(x.long())
    with pytest.raises(ValueError, match=r"seq_id: expected shape \(B, L\) with B=2, L=6, got \(2, 5\)"):
        module(x, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"seq_id: expected shape \(B, L\) with B=2, L=6, got \(1, 6\)"):
        module(x, torch.zeros(1, 6, dtype=torch.long))  # no silent broadcast over the batch
    with pytest.raises(ValueError, match=r"seq_id: expected shape \(B, L\) .*\(2 dims\), got \(6\) \(1 dims\)"):
        module(x, torch.zeros(6, dtype=torch.long))
    with pytest.raises(TypeError, match=r"seq_id: expected an integer or boolean tensor .*got torch.float32"):
        module(x, torch.zeros(2, 6))
    module.attn_implementation = "flash"
    with pytest.raises(ValueError, match=r"implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        module(x)


def test_bad_rotary_arguments():
    rotary = RotaryEmbedding(8)
    q = torch.randn(2, 5, 3, 8)
    with pytest.raises(ValueError, match=r"q: expected shape \(B, L, H, D\) with D=8, got \(2, 5, 3, 6\)"):
        rotary(q[..., :6], q)
    with pytest.raises(ValueError, match=r"k: expected shape \(B, L, G, D\) with B=2, L=5, D=8, got \(2, 4, 3, 8\)"):
        rotary(q, q[:, :4])
    with pytest.raises(TypeError, match=r"k: expected dtype torch.float32 \(the dtype of q\), got torch.float64"):
        rotary(q, q.double())
    with pytest.raises(ValueError, match=r"seqlen_offset: expected an int >= 0, got -1"):
        rotary(q, q, -1)
    with pytest.raises(TypeError, match=r"seqlen_offset: expected an int, got float 1.0"):
        rotary(q, q, 1.0)
