"""ESM3's multi-head attention and rotary embedding, built on [`attnref.core`][attnref.core].

Mirrors EvolutionaryScale's [esm](https://github.com/evolutionaryscale/esm) (release 3.2.1.post1),
files ``esm/layers/attention.py`` (``MultiHeadAttention``) and ``esm/layers/rotary.py``
(``RotaryEmbedding``, non-interleaved path). Constructor arguments, attribute names and submodule
names are upstream's, so a ``state_dict`` loads strictly in both directions.

Shape letters are core's: B batch, L sequence length (queries and keys: self-attention), H heads,
D head dim, E model dim (``d_model == H * D``). One local letter: P, rotated channel pairs
(``D / 2``), the last dim of the cos/sin tables.

**Upstream names differ.** ESM writes ``query_BLD`` where D is ``d_model`` and ``query_BHLD``
where D is the head dim; the same tensors are ``query_BLE`` and ``q_BHLD`` here.

How ESM's attention differs from plain multi-head attention:

- a LayerNorm *before* the fused q/k/v projection (``layernorm_qkv``, a pre-norm kept inside the
  attention block);
- optional LayerNorms on q and k (``q_ln``, ``k_ln``) that normalise over all of ``d_model``, every
  head together, not per head as QK-norm usually does;
- half-split rotary embedding (channel ``i`` turns with channel ``i + D/2``, as in GPT-NeoX and
  Hugging Face LLaMA), applied to q and k;
- packed sequences: ``seq_id`` lets a token attend only to tokens with the same id;
- no dropout, no causal mask.
"""

from __future__ import annotations

import einops
import torch
from torch import Tensor, nn

from attnref import _checks, core

__all__ = ["RotaryEmbedding", "MultiHeadAttention"]


class RotaryEmbedding(nn.Module):
    """Half-split rotary position embedding with cached cos/sin tables.

    Unlike plain attention, which has no notion of order, each query and key channel pair
    ``(i, i + D/2)`` is turned by the angle ``m * base^(-2i/D) / scaling_factor`` for a token at
    position ``m``, so that ``q . k`` depends on positions only through their difference.

    The angles are computed in float32 (positions up to the tens of thousands would collide in
    half precision); the tables are kept in float32 (float64 for float64 inputs) and the rotation
    runs in that precision, then casts back. Upstream casts the tables to the input dtype and
    rotates in it; see [`attnref.core.apply_rope_half_split()`][attnref.core.apply_rope_half_split].

    Mirrors ``esm/layers/rotary.py`` ``RotaryEmbedding`` with ``interleaved=False``,
    ``scale_base=None`` (no XPos), ``pos_idx_in_fp32=True``, and the rotated dim equal to the head
    dim (the only configuration ESM uses).

    Args:
        dim: ``D``, the head dim, even.
        base: frequency base (``theta``).
        scaling_factor: linear position interpolation: positions are divided by it.
    """

    inv_freq: Tensor

    def __init__(self, dim: int, base: float = 10000.0, scaling_factor: float = 1.0) -> None:
        super().__init__()
        _checks.check_positive_int("dim", dim)
        _checks.check_even("dim", dim)
        self.dim = dim
        self.base = float(_checks.check_positive_number("base", base))
        self.scaling_factor = float(_checks.check_positive_number("scaling_factor", scaling_factor))
        # The angles at position 1 are the inverse frequencies base^(-2i/D) themselves. The buffer
        # is not persistent, as upstream, so no rotary key appears in a state_dict; the tables
        # below come from core.rope_angles in float32 whatever dtype the module is cast to.
        inv_freq_P = core.rope_angles(torch.ones(()), dim, self.base, dtype=torch.float32)
        self.register_buffer("inv_freq", inv_freq_P, persistent=False)
        self._seq_len_cached = 0
        self._cos_cached: Tensor | None = None
        self._sin_cached: Tensor | None = None

    def _update_cos_sin_cache(self, seqlen: int, device: torch.device, dtype: torch.dtype) -> None:
        table_dtype = torch.promote_types(dtype, torch.float32)
        cos = self._cos_cached
        if (
            cos is None
            or seqlen > self._seq_len_cached
            or cos.device != device
            or cos.dtype != table_dtype
            # Tables made under inference_mode cannot be saved for backward outside it.
            or (cos.is_inference() and not torch.is_inference_mode_enabled())
        ):
            positions_L = torch.arange(seqlen, device=device, dtype=torch.float32)
            angles_LP = core.rope_angles(
                positions_L, self.dim, self.base, scaling_factor=self.scaling_factor, dtype=torch.float32
            )
            self._seq_len_cached = seqlen
            self._cos_cached = angles_LP.cos().to(table_dtype)
            self._sin_cached = angles_LP.sin().to(table_dtype)

    def forward(self, q: Tensor, k: Tensor, seqlen_offset: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate queries and keys by their positions ``seqlen_offset .. seqlen_offset + L - 1``.

        Args:
            q: ``(B, L, H, D)`` queries (upstream's layout: length before heads).
            k: ``(B, L, G, D)`` keys, same dtype as ``q``.
            seqlen_offset: position of the first token, for decoding after ``seqlen_offset``
                cached tokens.

        Returns:
            ``(q, k)`` rotated, with their shapes and dtype.
        """
        _checks.check_floating("q", q)
        sizes = _checks.check_shape("q", q, "B L H D", D=self.dim)
        _checks.check_floating("k", k)
        _checks.check_same_dtype("k", k, "q", q)
        _checks.check_shape("k", k, "B L G D", B=sizes["B"], L=sizes["L"], D=self.dim)
        if isinstance(seqlen_offset, bool) or not isinstance(seqlen_offset, int):
            _checks.fail("seqlen_offset", "an int", f"{type(seqlen_offset).__name__} {seqlen_offset!r}", TypeError)
        if seqlen_offset < 0:
            _checks.fail("seqlen_offset", "an int >= 0", seqlen_offset)
        L = sizes["L"]
        self._update_cos_sin_cache(L + seqlen_offset, q.device, q.dtype)
        # (L, 1, P): one angle per position and pair, shared by every head.
        cos_L1P = self._cos_cached[seqlen_offset : seqlen_offset + L, None, :]
        sin_L1P = self._sin_cached[seqlen_offset : seqlen_offset + L, None, :]
        return core.apply_rope_half_split(q, cos_L1P, sin_L1P), core.apply_rope_half_split(k, cos_L1P, sin_L1P)


class MultiHeadAttention(nn.Module):
    """ESM3 self-attention: pre-LayerNorm fused QKV, QK LayerNorm, half-split RoPE, packed sequences.

    Differs from plain multi-head attention in the LayerNorm before the q/k/v projection, the
    optional LayerNorms on q and k taken over all of ``d_model`` (not per head), rotary
    embeddings on q and k, and the ``seq_id`` mask for packed sequences. No dropout, not causal.

    Set ``attn_implementation`` (class or instance attribute) to ``"eager"`` to run the explicit
    matmul/softmax path [`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference] instead of
    PyTorch's fused kernel.

    Mirrors ``esm/layers/attention.py`` ``MultiHeadAttention``; submodules ``layernorm_qkv``
    (``Sequential(LayerNorm, Linear(d_model, 3 * d_model))``, output rows ``[q; k; v]``),
    ``out_proj``, ``q_ln``, ``k_ln`` and ``rotary`` have upstream's names, so ``state_dict`` keys
    are identical.

    Args:
        d_model: ``E``, the model dim, a multiple of ``n_heads``.
        n_heads: ``H``; the head dim ``d_model // n_heads`` must be even (RoPE pairs channels).
        bias: biases in the projections and in ``q_ln``/``k_ln`` (``layernorm_qkv.0`` always has
            one, as upstream).
        qk_layernorm: LayerNorm q and k (over all of ``d_model``); ``nn.Identity`` when False.
    """

    attn_implementation: str = "sdpa"

    def __init__(self, d_model: int, n_heads: int, bias: bool = False, qk_layernorm: bool = True) -> None:
        super().__init__()
        _checks.check_positive_int("d_model", d_model)
        _checks.check_positive_int("n_heads", n_heads)
        _checks.check_divisible("d_model", d_model, "n_heads", n_heads)
        _checks.check_even("head dim d_model // n_heads", d_model // n_heads)
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.layernorm_qkv = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 3 * d_model, bias=bias))
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        if qk_layernorm:
            self.q_ln: nn.Module = nn.LayerNorm(d_model, bias=bias)
            self.k_ln: nn.Module = nn.LayerNorm(d_model, bias=bias)
        else:
            self.q_ln = nn.Identity()
            self.k_ln = nn.Identity()
        self.rotary = RotaryEmbedding(self.d_head)

    def _check_inputs(self, x: object, seq_id: object) -> None:
        _checks.check_floating("x", x)
        sizes = _checks.check_shape("x", x, "B L E", E=self.d_model)
        weight = self.out_proj.weight
        # Under autocast the layers cast for themselves; otherwise a dtype mismatch would surface
        # as a bare matmul error deep inside torch.
        if not torch.is_autocast_enabled(x.device.type) and x.dtype != weight.dtype:
            _checks.fail("x", f"dtype {weight.dtype} (the dtype of the module's parameters)", x.dtype, TypeError)
        if x.device != weight.device:
            _checks.fail("x", f"device {weight.device} (the device of the module's parameters)", x.device)
        if seq_id is not None:
            _checks.check_shape("seq_id", seq_id, "B L", B=sizes["B"], L=sizes["L"])
            if seq_id.is_floating_point() or seq_id.is_complex():
                _checks.fail("seq_id", "an integer or boolean tensor of sequence ids", seq_id.dtype, TypeError)

    def forward(self, x: Tensor, seq_id: Tensor | None = None) -> Tensor:
        """Self-attention over ``x``; with ``seq_id``, only within each packed sequence.

        Args:
            x: ``(B, L, d_model)`` token states.
            seq_id: ``(B, L)`` integer or boolean sequence ids; token ``i`` attends to token ``j``
                only when ``seq_id[b, i] == seq_id[b, j]``. None: every token attends to all.

        Returns:
            ``(B, L, d_model)``.
        """
        self._check_inputs(x, seq_id)
        # One Linear to 3 * E channels, rows [q; k; v]: split the last dim in three.
        query_BLE, key_BLE, value_BLE = self.layernorm_qkv(x).chunk(3, dim=-1)
        # Under CUDA autocast LayerNorm returns float32; upstream casts both back to the query's dtype.
        query_BLE = self.q_ln(query_BLE).to(query_BLE.dtype)
        key_BLE = self.k_ln(key_BLE).to(query_BLE.dtype)

        q_BLHD = query_BLE.unflatten(-1, (self.n_heads, self.d_head))
        k_BLHD = key_BLE.unflatten(-1, (self.n_heads, self.d_head))
        q_BLHD, k_BLHD = self.rotary(q_BLHD, k_BLHD)

        q_BHLD = einops.rearrange(q_BLHD, "B L H D -> B H L D")
        k_BHLD = einops.rearrange(k_BLHD, "B L H D -> B H L D")
        v_BHLD = einops.rearrange(value_BLE, "B L (H D) -> B H L D", H=self.n_heads)

        mask_B1LL = None if seq_id is None else core.seq_id_mask(seq_id)
        context_BHLD = core.attend(
            q_BHLD, k_BHLD, v_BHLD, mask_B1LL, is_causal=False, dropout_p=0.0,
            implementation=self.attn_implementation,
        )
        context_BLE = einops.rearrange(context_BHLD, "B H L D -> B L (H D)")
        return self.out_proj(context_BLE)
