"""Fused-QKV multi-head attention and the ``nn.MultiheadAttention`` wrapper from LLMs-from-scratch.

Mirrors two classes of ``ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb``
in [rasbt/LLMs-from-scratch](https://github.com/rasbt/LLMs-from-scratch) at commit 28c65cd
(April 2026): ``MultiHeadAttentionCombinedQKV`` (one ``qkv`` Linear, split by ``view`` +
``permute``) and ``MHAPyTorchClass`` (PyTorch's ``nn.MultiheadAttention`` plus a projection).
Submodule and buffer names are upstream's (``qkv``, ``proj``, ``mask``, ``multihead_attn``).

Shape letters are [`attnref.core`][attnref.core]'s: B batch, L query length (upstream's ``num_tokens``,
``n``), H heads (``num_heads``), D head dim (``head_dim``), E model dim (``d_out = H * D``).
Both modules are causal self-attention, so the key length is ``L`` too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnref import _checks, core

__all__ = ["MultiHeadAttentionCombinedQKV", "MHAPyTorchClass"]


def _check_common(
    d_in: object, d_out: object, num_heads: object, context_length: object, dropout: object, qkv_bias: object
) -> float:
    _checks.check_positive_int("d_in", d_in)
    _checks.check_positive_int("d_out", d_out)
    _checks.check_positive_int("num_heads", num_heads)
    _checks.check_divisible("d_out", d_out, "num_heads", num_heads)
    _checks.check_positive_int("context_length", context_length)
    _checks.check_bool("qkv_bias", qkv_bias)
    return _checks.check_probability("dropout", dropout)


def _check_x(x: object, width: int, weight: Tensor, context_length: int) -> tuple[int, int]:
    _checks.check_floating("x", x)
    sizes = _checks.check_shape("x", x, "B L d_in", d_in=width)
    _checks.check_same_dtype("x", x, "the module's weights", weight)
    if sizes["L"] > context_length:
        _checks.fail("x", f"length L <= context_length={context_length}", sizes["L"])
    return sizes["B"], sizes["L"]


class MultiHeadAttentionCombinedQKV(nn.Module):
    """Causal multi-head self-attention with one fused ``qkv`` projection.

    Plain causal MHA, except that queries, keys and values come from a single
    ``Linear(d_in, 3 * d_out)``: its output is viewed as ``(B, L, 3, H, D)`` (the ``3`` is
    the outer split, so the first ``d_out`` output rows of ``qkv.weight`` are the query
    projection, then the key, then the value projection) and permuted to ``(3, B, H, L, D)``
    so that unbinding dim 0 yields the three ``(B, H, L, D)`` tensors. The output projection
    ``proj`` has a bias, the ``qkv`` projection only with ``qkv_bias``.

    ``mask`` is upstream's buffer, ``triu(ones(context_length, context_length), diagonal=1)``
    as float: **1 = blocked**, upstream's convention, kept with its values so upstream
    state dicts load strictly. attnref's own API uses True = may attend; forward does not
    read the buffer but passes ``is_causal=True`` to [`attnref.core.attend()`][attnref.core.attend].

    Differences from upstream: upstream reshapes the heads back with ``embed_dim``, the input's
    last dim ``d_in``, so its ``view`` fails whenever ``d_in != d_out``; here it is ``d_out``.
    A sequence longer than ``context_length`` raises a ``ValueError`` instead of a shape error
    deep in ``masked_fill``.

    Mirrors ``MultiHeadAttentionCombinedQKV`` in
    ``ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb`` of
    rasbt/LLMs-from-scratch.

    Args:
        d_in: input width.
        d_out: model dim ``E``, a multiple of ``num_heads``.
        num_heads: heads ``H``; ``head_dim = d_out // num_heads``.
        context_length: longest accepted sequence (size of ``mask``).
        dropout: dropout probability on the attention weights, in ``[0, 1)``, training only.
        qkv_bias: give the ``qkv`` projection a bias.

    Attributes:
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``
            ([`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference]); set on the class or an instance.
    """

    attn_implementation: str = "sdpa"

    def __init__(
        self,
        d_in: int,
        d_out: int,
        num_heads: int,
        context_length: int,
        dropout: float = 0.0,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        dropout = _check_common(d_in, d_out, num_heads, context_length, dropout, qkv_bias)
        self.d_in = d_in
        self.d_out = d_out
        self.num_heads = num_heads
        self.context_length = context_length
        self.head_dim = d_out // num_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # Upstream's convention (1 = blocked), for weight compatibility only; see the class docstring.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: Tensor) -> Tensor:
        """Causal self-attention over ``x``.

        Args:
            x: ``(B, L, d_in)`` with ``L <= context_length``.

        Returns:
            ``(B, L, d_out)``.
        """
        _checks.check_choice("attn_implementation", self.attn_implementation, core.IMPLEMENTATIONS)
        B, L = _check_x(x, self.d_in, self.qkv.weight, self.context_length)
        H, D = self.num_heads, self.head_dim

        # (B, L, 3 * E) -> (B, L, 3, H, D): the 3 is outermost in qkv's output rows.
        qkv_BL3HD = self.qkv(x).view(B, L, 3, H, D)
        # (B, L, 3, H, D) -> (3, B, H, L, D): dim 2 (q/k/v) first, then batch, heads, length, head dim.
        qkv_3BHLD = qkv_BL3HD.permute(2, 0, 3, 1, 4)
        # 3 x (B, H, L, D); strided views, which both kernels accept without a copy.
        q_BHLD, k_BHLD, v_BHLD = qkv_3BHLD.unbind(0)

        dropout_p = self.dropout.p if self.training else 0.0
        out_BHLD = core.attend(
            q_BHLD, k_BHLD, v_BHLD, is_causal=True, dropout_p=dropout_p, implementation=self.attn_implementation
        )
        # (B, H, L, D) -> (B, L, H, D) -> (B, L, E); E = d_out, not upstream's d_in (see above).
        out_BLE = out_BHLD.transpose(1, 2).reshape(B, L, self.d_out)
        return self.proj(out_BLE)


class MHAPyTorchClass(nn.Module):
    """Causal self-attention through PyTorch's ``nn.MultiheadAttention``, then a projection.

    The attention is ``nn.MultiheadAttention(embed_dim=d_out, num_heads, dropout,
    bias=qkv_bias, batch_first=True)``: fused input projection ``in_proj_weight`` (rows q, k,
    v), its own output projection ``out_proj``, and the causal mask passed as ``attn_mask``.
    Upstream then applies a second projection ``proj`` (with bias), so the module projects the
    output twice; that is kept. ``mask`` is a boolean buffer with **True = blocked**, which is
    ``nn.MultiheadAttention``'s own convention (the opposite of attnref's).

    Differences from upstream, on purpose:

    - ``need_weights``: upstream passes it to ``nn.MultiheadAttention`` but always returns only
      ``proj(out)``, discarding the weights. Here ``need_weights=True`` returns
      ``(out, attn_weights)`` with per-head weights (``average_attn_weights=False``);
      ``need_weights=False`` returns ``out`` alone.
    - ``qkv_bias``: upstream sets ``bias=qkv_bias`` *and* ``add_bias_kv=qkv_bias``; the latter
      does not add a bias but appends a learned extra key and value token (``bias_k``,
      ``bias_v``), so every query also attends to one position beyond the sequence. Here
      ``qkv_bias`` sets ``bias`` only, which is what the name and the other classes mean.
      Upstream state dicts with ``qkv_bias=True`` therefore hold two extra keys.
    - ``d_in != d_out`` raises a ``ValueError``: ``nn.MultiheadAttention`` has one
      ``embed_dim`` and upstream silently ignores ``d_in``.
    - A sequence longer than ``context_length`` raises a ``ValueError`` instead of failing deep
      inside ``nn.MultiheadAttention`` with a mask-shape error.

    This class has no ``attn_implementation``: choosing PyTorch's kernel is its point.

    Mirrors ``MHAPyTorchClass`` in
    ``ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb`` of
    rasbt/LLMs-from-scratch.

    Args:
        d_in: input width; must equal ``d_out``.
        d_out: model dim ``E``, a multiple of ``num_heads``.
        num_heads: heads ``H``.
        context_length: longest accepted sequence (size of ``mask``).
        dropout: dropout on the attention weights, in ``[0, 1)``, training only.
        qkv_bias: biases on the input projection and on ``multihead_attn.out_proj``.
        need_weights: also return the per-head attention weights.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        num_heads: int,
        context_length: int,
        dropout: float = 0.0,
        qkv_bias: bool = False,
        need_weights: bool = True,
    ) -> None:
        super().__init__()
        dropout = _check_common(d_in, d_out, num_heads, context_length, dropout, qkv_bias)
        if d_in != d_out:
            _checks.fail("d_in", f"d_in == d_out={d_out} (nn.MultiheadAttention has one embed_dim)", d_in)
        if not isinstance(need_weights, bool):
            _checks.fail("need_weights", "a bool", f"{type(need_weights).__name__} {need_weights!r}", TypeError)
        self.d_out = d_out
        self.context_length = context_length
        self.multihead_attn = nn.MultiheadAttention(
            embed_dim=d_out, num_heads=num_heads, dropout=dropout, bias=qkv_bias, batch_first=True
        )
        self.need_weights = need_weights
        self.proj = nn.Linear(d_out, d_out)
        # nn.MultiheadAttention's convention: True = blocked.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1).bool())

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Causal self-attention over ``x``.

        Args:
            x: ``(B, L, d_out)`` with ``L <= context_length``.

        Returns:
            With ``need_weights``: ``(out, attn_weights)``, ``(B, L, d_out)`` and ``(B, H, L, L)``
            (the weights used, after dropout in training mode; zero above the diagonal).
            Without: ``out`` alone.
        """
        need_weights = self.need_weights  # an attribute users may set after construction
        if not isinstance(need_weights, bool):
            _checks.fail("need_weights", "a bool", f"{type(need_weights).__name__} {need_weights!r}", TypeError)
        _, L = _check_x(x, self.d_out, self.multihead_attn.in_proj_weight, self.context_length)
        out_BLE, weights_BHLL = self.multihead_attn(
            x, x, x,
            attn_mask=self.mask[:L, :L],  # a view of the buffer: nothing allocated per call
            # A hint that the mask is causal: without weights nn.MultiheadAttention then drops it and
            # runs SDPA with is_causal=True (no L x L mask read, causal kernel); with weights it is used.
            is_causal=True,
            need_weights=self.need_weights,
            average_attn_weights=False,
        )
        out_BLE = self.proj(out_BLE)
        if self.need_weights:
            return out_BLE, weights_BHLL
        return out_BLE
