"""attnref.flux against closed forms, complex multiplication and attnref.core (flux has no package)."""

import math

import einops
import pytest
import torch

from attnref import core
from attnref.flux import EmbedND, apply_rope, attention, rope

# Half-precision attention against float32, as max |error| / max |float32 output|. q, k, v are
# rounded to the half dtype (unit roundoff 2^-11 for float16, 2^-8 for bfloat16) and the output is
# rounded again; RoPE and the softmax run in float32. 4 unit roundoffs leaves room for both.
HALF_RTOL = {torch.float16: 4 * 2.0**-11, torch.bfloat16: 4 * 2.0**-8}

B, H, L, D = 2, 3, 5, 8
AXES_DIM = [2, 2, 4]  # sums to D, as Flux's [16, 56, 56] sums to its head dim 128


def rand(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def positions(B=B, L=L, seed=0):
    return torch.randint(0, 50, (B, L), generator=torch.Generator().manual_seed(seed)).float()


def pe_for(B=B, L=L, D=D, seed=0):
    return rope(positions(B, L, seed), D, 10000).unsqueeze(1)


# -- rope --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim,theta", [(8, 10000), (6, 100)])
# float32 angles of positions below 50 are good to about 50 * 2^-24 rad; float64 ones to 1e-7 after
# the cast of the matrices to float32.
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 5e-6), (torch.float64, 1e-7)])
def test_rope_closed_form(dim, theta, dtype, atol):
    pos = positions().to(dtype)
    out = rope(pos, dim, theta)
    assert out.shape == (B, L, dim // 2, 2, 2) and out.dtype == torch.float32
    for b in range(B):
        for l in range(L):
            for i in range(dim // 2):
                angle = float(pos[b, l]) * theta ** (-2 * i / dim)
                c, s = math.cos(angle), math.sin(angle)
                expected = torch.tensor([[c, -s], [s, c]], dtype=torch.float32)
                torch.testing.assert_close(out[b, l, i], expected, atol=atol, rtol=0)


def test_rope_computes_in_the_dtype_of_float_positions():
    """float32 ids (Flux's) give float32 angles, bit for bit the closed form in float32."""
    pos = torch.tensor([[0.0, 1.0, 4095.0, 123457.0]])
    dim, theta = 16, 10000
    omega = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = pos[..., None] * omega
    expected = torch.stack((angles.cos(), -angles.sin(), angles.sin(), angles.cos()), dim=-1).unflatten(-1, (2, 2))
    assert torch.equal(rope(pos, dim, theta), expected)
    # float64 ids keep float64 angles; at large positions the two precisions visibly differ.
    assert not torch.equal(rope(pos.double(), dim, theta), expected)
    assert torch.equal(rope(pos.long(), dim, theta), expected)


def test_apply_rope_is_complex_multiplication_and_core_adjacent():
    pos = positions()
    pe = rope(pos, D, 10000).unsqueeze(1)
    q, k = rand(B, H, L, D, dtype=torch.float32), rand(B, H, L, D, dtype=torch.float32, seed=1)
    q_rot, k_rot = apply_rope(q, k, pe)
    angles = core.rope_angles(pos, D, 10000, dtype=torch.float64)[:, None]  # (B, 1, L, D/2)
    phasor = torch.polar(torch.ones_like(angles), angles)
    for x, x_rot in ((q, q_rot), (k, k_rot)):
        as_complex = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)).contiguous())
        expected = torch.view_as_real(as_complex * phasor).flatten(-2)
        torch.testing.assert_close(x_rot.double(), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(x_rot, core.apply_rope_adjacent(x, angles.cos().float(), angles.sin().float()))


def test_apply_rope_applies_general_matrices_as_upstream():
    matrices = rand(1, 1, L, D // 2, 2, 2, dtype=torch.float32, seed=3)  # not rotations
    q = rand(B, H, L, D, dtype=torch.float32)
    out, _ = apply_rope(q, q, matrices)
    pairs = q.unflatten(-1, (-1, 2))
    expected = torch.einsum("blprc,bhlpc->bhlpr", matrices.squeeze(1).expand(B, -1, -1, -1, -1), pairs)
    torch.testing.assert_close(out, expected.flatten(-2))


def test_rotation_preserves_norms():
    q = rand(B, H, L, D)
    q_rot, _ = apply_rope(q, q, pe_for())
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1), atol=1e-6, rtol=1e-6)


def test_scores_depend_only_on_position_difference():
    q, k = rand(1, 1, 1, D), rand(1, 1, 1, D, seed=1)
    def score(m, n):
        q_rot, _ = apply_rope(q, q, rope(torch.tensor([[float(m)]]), D, 10000).unsqueeze(1))
        _, k_rot = apply_rope(k, k, rope(torch.tensor([[float(n)]]), D, 10000).unsqueeze(1))
        return float((q_rot * k_rot).sum())
    assert score(7, 3) == pytest.approx(score(14, 10), abs=1e-6)
    assert score(7, 3) == pytest.approx(score(4, 0), abs=1e-6)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


# -- EmbedND -----------------------------------------------------------------------------------------


def test_embednd_shape_and_axis_blocks():
    embed = EmbedND(dim=D, theta=10000, axes_dim=AXES_DIM)
    assert (embed.dim, embed.theta, embed.axes_dim) == (D, 10000, AXES_DIM)
    assert list(embed.parameters()) == [] and len(embed.state_dict()) == 0
    ids = torch.stack([positions(seed=s) for s in range(3)], dim=-1)  # (B, L, 3)
    pe = embed(ids)
    assert pe.shape == (B, 1, L, D // 2, 2, 2) and pe.dtype == torch.float32
    start = 0
    for axis, axis_dim in enumerate(AXES_DIM):
        block = pe[:, 0, :, start : start + axis_dim // 2]
        torch.testing.assert_close(block, rope(ids[..., axis], axis_dim, 10000), atol=0, rtol=0)
        start += axis_dim // 2


# -- attention ---------------------------------------------------------------------------------------


def test_attention_equals_reference_on_rotated_inputs():
    q, k, v = rand(B, H, L, D), rand(B, H, L, D, seed=1), rand(B, H, L, D, seed=2)
    pe = pe_for()
    q_rot, k_rot = apply_rope(q, k, pe)
    expected = einops.rearrange(core.sdpa_reference(q_rot, k_rot, v), "B H L D -> B L (H D)")
    for implementation in core.IMPLEMENTATIONS:
        out = attention(q, k, v, pe, implementation=implementation)
        assert out.shape == (B, L, H * D)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


def test_pe_with_batch_one_is_shared():
    q, k, v = rand(B, H, L, D), rand(B, H, L, D, seed=1), rand(B, H, L, D, seed=2)
    pe = pe_for(B=1)
    per_batch = torch.cat([attention(q[b : b + 1], k[b : b + 1], v[b : b + 1], pe) for b in range(B)])
    torch.testing.assert_close(attention(q, k, v, pe), per_batch, atol=1e-12, rtol=1e-12)


def test_gradcheck():
    q, k, v = (rand(1, 2, 3, 4, seed=s).requires_grad_() for s in range(3))
    pe = pe_for(B=1, L=3, D=4)
    for implementation in core.IMPLEMENTATIONS:
        assert torch.autograd.gradcheck(lambda *t: attention(*t, pe, implementation=implementation), (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float32(dtype):
    q, k, v = (rand(B, H, L, D, dtype=torch.float32, seed=s) for s in range(3))
    pe = pe_for()
    reference = attention(q, k, v, pe)
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype), pe)
    assert out.dtype == dtype
    error = (out.float() - reference).abs().max() / reference.abs().max()
    assert error <= HALF_RTOL[dtype], f"{dtype}: relative error {error:.2e} > {HALF_RTOL[dtype]:.2e}"


# -- bad input ---------------------------------------------------------------------------------------


def test_seed_demo_pe_without_head_axis_raises_helpfully():
    q = k = v = rand(B, H, L, D)
    pe = torch.randn(B, L, D // 2, 2, 2, dtype=torch.float64)  # the seed note's pe: no head axis
    with pytest.raises(ValueError, match=r"pe: expected .*got \(2, 5, 4, 2, 2\) \(5 dims\); the head axis is missing: add it with pe.unsqueeze\(1\), or build pe with EmbedND"):
        attention(q, k, v, pe)
    with pytest.raises(ValueError, match=r"freqs_cis: expected .*head axis is missing.*freqs_cis.unsqueeze\(1\)"):
        apply_rope(q, k, pe)


def test_missing_head_axis_raises_even_when_it_would_broadcast():
    # With B == H, a (B, L, D/2, 2, 2) pe lines up as (H, L, D/2, 2, 2) against (B, H, L, D/2, 1, 2)
    # and would broadcast without complaint, rotating head h by batch h's positions.
    q = k = v = rand(3, 3, L, D)
    pe = rope(positions(B=3), D, 10000)
    with pytest.raises(ValueError, match=r"pe: expected .*got \(3, 5, 4, 2, 2\) \(5 dims\); the head axis is missing"):
        attention(q, k, v, pe)


def test_blhd_layout_names_q_not_pe():
    # (B, L, H, D), the layout of Flux's own qkv before its rearrange: q's head axis holds L.
    q = k = v = rand(B, L, H, D)
    pe = pe_for()
    with pytest.raises(ValueError, match=r"q: expected shape \(B, H, L, D\) with L=5 \(the positions in pe\), got \(2, 5, 3, 8\); q looks like \(B, L, H, D\): .*transpose\(1, 2\)"):
        attention(q, k, v, pe)
    with pytest.raises(ValueError, match=r"xq: expected .*L=5 \(the positions in freqs_cis\).*xq looks like \(B, L, H, D\)"):
        apply_rope(q, k, pe)
    # The fix the message gives works.
    assert attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), pe).shape == (B, L, H * D)


def test_bad_inputs():
    q = rand(B, H, L, D)
    pe = pe_for()
    with pytest.raises(ValueError, match=r"dim: expected an even number .*got 7"):
        rope(positions(), 7, 10000)
    with pytest.raises(ValueError, match=r"pos: expected shape \(B, L\) \(2 dims\), got \(5\) \(1 dims\)"):
        rope(torch.arange(5), 8, 10000)
    with pytest.raises(ValueError, match=r"q: expected shape \(B, H, L, D\) \(4 dims\), got \(3, 5, 8\) \(3 dims\)"):
        attention(q[0], q, q, pe)
    with pytest.raises(ValueError, match=r"k: expected shape \(B, H, L, D\) with B=2, H=3, L=5, D=8, got \(2, 3, 4, 8\)"):
        attention(q, q[:, :, :4], q, pe)
    with pytest.raises(ValueError, match=r"v: expected shape \(B, H, L, D\) with B=2, H=3, L=5, D=8 \(4 dims\), got \(3, 5, 8\) \(3 dims\)"):
        attention(q, q, q[0], pe)
    with pytest.raises(ValueError, match=r"q.shape\[-1\]: expected an even number .*got 7"):
        attention(q[..., :7], q[..., :7], q[..., :7], pe)
    with pytest.raises(ValueError, match=r"xq.shape\[-1\]: expected an even number .*got 7"):
        apply_rope(q[..., :7], q[..., :7], pe)
    with pytest.raises(ValueError, match=r"pe: expected shape \(B, 1, L, D/2, 2, 2\) = \(2, 1, 5, 4, 2, 2\).*got \(2, 1, 6, 4, 2, 2\)"):
        attention(q, q, q, pe_for(L=6))  # mismatched L
    with pytest.raises(ValueError, match=r"pe: expected shape .* = \(2, 1, 5, 4, 2, 2\).*got \(2, 1, 5, 3, 2, 2\)"):
        attention(q, q, q, pe_for(D=6))  # mismatched D/2
    with pytest.raises(ValueError, match=r"pe: expected shape .*got \(2, 1, 1, 4, 2, 2\)"):
        attention(q, q, q, pe_for(L=1))  # one position would broadcast over all L
    with pytest.raises(TypeError, match=r"k: expected dtype torch.float64 \(the dtype of q\), got torch.float32"):
        attention(q, q.float(), q, pe)
    with pytest.raises(ValueError, match=r"implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        attention(q, q, q, pe, implementation="flash")


def test_bad_embednd_arguments():
    with pytest.raises(ValueError, match=r"axes_dim\[1\]: expected an even number .*got 3"):
        EmbedND(dim=8, theta=10000, axes_dim=[2, 3, 3])
    with pytest.raises(ValueError, match=r"axes_dim: expected channels summing to dim=8, got \[2, 2, 2\] \(sum 6\)"):
        EmbedND(dim=8, theta=10000, axes_dim=[2, 2, 2])
    embed = EmbedND(dim=D, theta=10000, axes_dim=AXES_DIM)
    with pytest.raises(ValueError, match=r"ids: expected shape \(B, L, N\) with N=3, got \(2, 5, 2\)"):
        embed(torch.zeros(B, L, 2))
    with pytest.raises(ValueError, match=r"ids: expected shape \(B, L, N\) with N=3 \(3 dims\), got \(5, 3\) \(2 dims\)"):
        embed(torch.zeros(L, 3))
