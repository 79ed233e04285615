"""Flux's attention and N-axis rotary embedding, built on [`attnref.core`][attnref.core].

Mirrors black-forest-labs' [flux](https://github.com/black-forest-labs/flux) at commit 802fb47
(July 2025), files ``src/flux/math.py`` (``attention``, ``rope``, ``apply_rope``) and
``src/flux/modules/layers.py`` (``EmbedND``). Function names, argument names and the
``(B, 1, L, D/2, 2, 2)`` layout of ``pe`` are upstream's.

Shape letters are core's: B batch, L sequence length (image and text tokens together; queries and
keys: self-attention), H heads, D head dim. Two local letters: P, rotated channel pairs
(``D / 2``), and N, position axes (``len(axes_dim)``; 3 in Flux: an image index, 0 for text and
the generated image and 1 for Kontext's reference image, then row and column).

How Flux's attention differs from plain multi-head attention:

- **Adjacent pairs.** Flux's RoPE turns channel ``2i`` with channel ``2i + 1`` (as Meta's LLaMA
  and RoFormer do), unlike the half-split ``rotate_half`` of Hugging Face LLaMA and ESM, which turns
  channel ``i`` with ``i + D/2``. Weights trained with one pairing do not work with the other
  without permuting q/k rows ([`attnref.core.adjacent_to_half_split()`][attnref.core.adjacent_to_half_split]).
- **pe is a stack of 2x2 matrices.** Upstream calls it ``freqs_cis`` (the name of Meta's complex
  ``cos + i sin`` tensor), but it holds real rotation matrices ``[[cos, -sin], [sin, cos]]``,
  one per position and pair, of shape ``(B, 1, L, D/2, 2, 2)``; the ``1`` is the head axis.
- **Positions on several axes.** [`EmbedND`][attnref.flux.EmbedND] gives each axis its own block of
  channel pairs
  (``axes_dim[i] / 2`` pairs each) with its own frequencies, so a pixel's row and column both turn
  q and k. Positions are read from ``ids``, not from token order.
- The rotary embedding is passed in (``pe``), not computed inside the attention; no mask, no
  dropout.

Flux's blocks (``SelfAttention``, ``DoubleStreamBlock``, ``SingleStreamBlock`` in
``modules/layers.py``) also RMS-normalise q and k per head (``QKNorm``) before calling
``attention``; that norm belongs to the blocks and is not part of this module.
"""

from __future__ import annotations

import einops
import torch
from torch import Tensor, nn

from attnref import _checks, core

__all__ = ["rope", "apply_rope", "attention", "EmbedND"]


def rope(pos: Tensor, dim: int, theta: int) -> Tensor:
    """Rotation matrices for positions ``pos`` on one axis, adjacent-pair convention.

    Pair ``i`` at position ``m`` turns by ``m * theta^(-2i/dim)``. The angles and their cos/sin
    are computed in the dtype of ``pos``, as upstream does since commit 4343061 (January 2025;
    its first release used float64): float32 for Flux's float32 position ids, float64 for float64
    ones. Integer positions give float32 angles, as upstream's ``einsum`` gives them by type
    promotion (PyTorch 2.13); half-precision positions are computed in float32, where upstream
    rounds the angles to half precision. The matrices are returned in float32.

    Args:
        pos: ``(B, L)`` positions on this axis (integer or float).
        dim: channels given to this axis, even; ``dim / 2`` pairs.
        theta: frequency base.

    Returns:
        ``(B, L, dim/2, 2, 2)`` float32, entry ``[b, l, i]`` the matrix ``[[cos, -sin], [sin, cos]]``
        of that angle.
    """
    _checks.check_shape("pos", pos, "B L")
    if pos.is_complex():
        _checks.fail("pos", "a real tensor of positions", pos.dtype, TypeError)
    _checks.check_positive_int("dim", dim)
    _checks.check_even("dim", dim)
    _checks.check_positive_number("theta", theta)
    dtype = torch.float64 if pos.dtype == torch.float64 else torch.float32
    angles_BLP = core.rope_angles(pos, dim, theta, dtype=dtype)
    cos_BLP, sin_BLP = angles_BLP.cos(), angles_BLP.sin()
    # Row-major [[cos, -sin], [sin, cos]]: (x0, x1) -> (cos x0 - sin x1, sin x0 + cos x1).
    rot_BLP4 = torch.stack((cos_BLP, -sin_BLP, sin_BLP, cos_BLP), dim=-1)
    return rot_BLP4.unflatten(-1, (2, 2)).float()


def _check_pe(pe: object, B: int, H: int, L: int, D: int, name: str = "pe", q_name: str = "q") -> None:
    _checks.check_floating(name, pe)
    if pe.dim() == 6 and pe.shape[2] == H != L:
        # pe counts the positions; when q's head axis holds that count, q is (B, L, H, D).
        _checks.fail(
            q_name, f"shape (B, H, L, D) with L={pe.shape[2]} (the positions in {name})",
            f"({B}, {H}, {L}, {D})",
            hint=f"{q_name} looks like (B, L, H, D): move the head axis first with .transpose(1, 2), "
                 "on every input alike",
        )
    P = D // 2
    expected = (
        f"shape (B, 1, L, D/2, 2, 2) = ({B}, 1, {L}, {P}, 2, 2) (B may be 1, the head axis may be "
        f"H={H})"
    )
    got = "(" + ", ".join(str(s) for s in pe.shape) + f") ({pe.dim()} dims)"
    if pe.dim() == 5:
        # Without a head axis, pe's batch axis would line up with q's head axis and broadcast
        # silently whenever B == H.
        _checks.fail(
            name, expected, got,
            hint=f"the head axis is missing: add it with {name}.unsqueeze(1), or build {name} with EmbedND",
        )
    if pe.dim() != 6:
        _checks.fail(name, expected, got)
    if pe.shape[0] not in (1, B) or pe.shape[1] not in (1, H) or tuple(pe.shape[2:]) != (L, P, 2, 2):
        _checks.fail(name, expected, got)


def apply_rope(xq: Tensor, xk: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    """Multiply each adjacent channel pair of ``xq`` and ``xk`` by its 2x2 matrix.

    For pair ``i`` with channels ``(x0, x1) = (x[2i], x[2i+1])`` the result is
    ``out_r = M[i, r, 0] * x0 + M[i, r, 1] * x1``. With the rotation matrices of
    [`rope()`][attnref.flux.rope] this is
    [`attnref.core.apply_rope_adjacent()`][attnref.core.apply_rope_adjacent] (the complex product ``(x0 +
    i x1) e^{i angle}``); any other 2x2 matrices are applied as given, as upstream does.

    Computed in float32 (float64 for float64 inputs; upstream always uses float32) and cast back
    to the input dtype.

    Args:
        xq: ``(B, H, L, D)`` queries, ``D`` even.
        xk: ``(B, H, L, D)`` keys, same shape and dtype.
        freqs_cis: ``(B, 1, L, D/2, 2, 2)`` matrices, as [`EmbedND`][attnref.flux.EmbedND] returns (``B``
            may be 1).

    Returns:
        ``(xq, xk)`` rotated, with their shape and dtype.
    """
    _checks.check_floating("xq", xq)
    sizes = _checks.check_shape("xq", xq, "B H L D")
    _checks.check_even("xq.shape[-1]", sizes["D"])
    _checks.check_floating("xk", xk)
    _checks.check_same_dtype("xk", xk, "xq", xq)
    _checks.check_shape("xk", xk, "B H L D", **sizes)
    _check_pe(freqs_cis, sizes["B"], sizes["H"], sizes["L"], sizes["D"], name="freqs_cis", q_name="xq")
    return _rotate_pairs(xq, freqs_cis), _rotate_pairs(xk, freqs_cis)


def _rotate_pairs(x_BHLD: Tensor, rot_B1LP22: Tensor) -> Tensor:
    acc = torch.promote_types(x_BHLD.dtype, torch.float32)
    # (B, H, L, P, 1, 2): the pair (x0, x1) as a row, broadcast against both rows of the matrix.
    pairs_BHLP12 = x_BHLD.to(acc).unflatten(-1, (-1, 1, 2))
    rot_B1LP22 = rot_B1LP22.to(acc)
    out_BHLP2 = rot_B1LP22[..., 0] * pairs_BHLP12[..., 0] + rot_B1LP22[..., 1] * pairs_BHLP12[..., 1]
    return out_BHLP2.flatten(-2).to(x_BHLD.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, pe: Tensor, *, implementation: str = "sdpa") -> Tensor:
    """Flux attention: RoPE by ``pe`` on q and k, unmasked attention, heads merged.

    Differs from plain multi-head attention in the adjacent-pair RoPE applied from a precomputed
    ``pe`` (2x2 matrices, see [`apply_rope()`][attnref.flux.apply_rope]) and in returning heads already
    merged. There is no mask: image and text tokens all attend to each other.

    Args:
        q: ``(B, H, L, D)`` queries.
        k: ``(B, H, L, D)`` keys.
        v: ``(B, H, L, D)`` values.
        pe: ``(B, 1, L, D/2, 2, 2)`` from [`EmbedND`][attnref.flux.EmbedND] (``B`` may be 1).
        implementation: ``"sdpa"`` (PyTorch's fused kernel, upstream's) or ``"eager"``
            ([`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference]).

    Returns:
        ``(B, L, H * D)``.
    """
    _checks.check_choice("implementation", implementation, core.IMPLEMENTATIONS)
    _checks.check_floating("q", q)
    sizes = _checks.check_shape("q", q, "B H L D")
    _checks.check_even("q.shape[-1]", sizes["D"])
    # apply_rope checks q and k too, but under its names xq and xk; check here so messages say q, k.
    _checks.check_floating("k", k)
    _checks.check_same_dtype("k", k, "q", q)
    _checks.check_shape("k", k, "B H L D", **sizes)
    _checks.check_floating("v", v)
    _checks.check_same_dtype("v", v, "q", q)
    _checks.check_shape("v", v, "B H L D", **sizes)
    _check_pe(pe, sizes["B"], sizes["H"], sizes["L"], sizes["D"])
    q_BHLD, k_BHLD = apply_rope(q, k, pe)
    x_BHLD = core.attend(q_BHLD, k_BHLD, v, is_causal=False, dropout_p=0.0, implementation=implementation)
    return einops.rearrange(x_BHLD, "B H L D -> B L (H D)")


class EmbedND(nn.Module):
    """Rotary matrices for N position axes, one block of channel pairs per axis.

    Unlike 1-D RoPE, a token's position is a vector ``ids[b, l] = (p_0, ..., p_{N-1})``; axis ``i``
    owns ``axes_dim[i] / 2`` consecutive channel pairs with frequencies ``theta^(-2j/axes_dim[i])``.
    The blocks are concatenated in axis order along the pair dim and a head axis of size 1 is added.
    No parameters.

    Mirrors ``src/flux/modules/layers.py`` ``EmbedND``.

    Args:
        dim: head dim ``D``; must equal ``sum(axes_dim)`` (upstream's ``EmbedND`` stores it
            without checking; its ``Flux`` model checks the sum).
        theta: frequency base.
        axes_dim: channels per axis, each even.
    """

    def __init__(self, dim: int, theta: int, axes_dim: list[int]) -> None:
        super().__init__()
        _checks.check_positive_int("dim", dim)
        _checks.check_positive_number("theta", theta)
        if not isinstance(axes_dim, (list, tuple)) or len(axes_dim) == 0:
            _checks.fail("axes_dim", "a non-empty list of even ints", repr(axes_dim), TypeError)
        for i, axis_dim in enumerate(axes_dim):
            _checks.check_positive_int(f"axes_dim[{i}]", axis_dim)
            _checks.check_even(f"axes_dim[{i}]", axis_dim)
        if sum(axes_dim) != dim:
            _checks.fail("axes_dim", f"channels summing to dim={dim}", f"{list(axes_dim)} (sum {sum(axes_dim)})")
        self.dim = dim
        self.theta = theta
        self.axes_dim = list(axes_dim)

    def forward(self, ids: Tensor) -> Tensor:
        """Rotation matrices for the positions in ``ids``.

        Args:
            ids: ``(B, L, N)`` positions, ``N = len(axes_dim)``.

        Returns:
            ``(B, 1, L, sum(axes_dim) / 2, 2, 2)`` float32, the ``pe`` of
            [`attention()`][attnref.flux.attention].
        """
        _checks.check_shape("ids", ids, "B L N", N=len(self.axes_dim))
        if ids.is_complex():
            _checks.fail("ids", "a real tensor of positions", ids.dtype, TypeError)
        blocks = [rope(ids[..., i], axis_dim, self.theta) for i, axis_dim in enumerate(self.axes_dim)]
        rot_BLP22 = torch.cat(blocks, dim=-3)
        return rot_BLP22.unsqueeze(1)
