"""Happy-LLM's tutorial attention: the ``attention`` function and ``MultiHeadAttention``.

Mirrors ``docs/chapter2/code/transformer.py`` of
[datawhalechina/happy-llm](https://github.com/datawhalechina/happy-llm), the teaching
Transformer of the Happy-LLM book (chapter 2). Parameter and buffer names are upstream's
(``wq``, ``wk``, ``wv``, ``wo``, ``mask``), so the tutorial's ``state_dict`` loads strictly.

Shape letters are [`attnref.core`][attnref.core]'s: B batch, L query length, S key length, H heads
(upstream's ``n_heads``), D head dim (``head_dim``), E model dim. Here the input width
``n_embd`` and the output width ``dim`` may differ; both default to ``dim``.

Checked against happy-llm at commit f115ef3 (May 2026). There the listing printed in the chapter
text (``docs/chapter2``, section 2.1.6) and the code file agree on the module: both store
``is_causal`` and build ``wq`` from ``args.n_embd``; the printed listing still uses ``math``,
``F`` and ``ModelArgs`` without importing or defining them. Chapter versions before commit
edbcd3a (August 2025), and the study notes copied from them, never store ``is_causal`` and build
``wq`` from ``args.dim``. The code file runs, but only for self-attention of sequences up to
``max_seq_len``. attnref follows the code file (``n_embd`` in, ``dim`` out); the fixes are listed
on [`MultiHeadAttention`][attnref.happy_llm.MultiHeadAttention].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnref import _checks, core

__all__ = ["ModelArgs", "attention", "MultiHeadAttention"]


@dataclass
class ModelArgs:
    """The configuration fields Happy-LLM's ``MultiHeadAttention`` reads.

    Upstream's ``ModelArgs`` is a dataclass in ``docs/chapter2/code/transformer.py`` with more
    fields (``vocab_size``, ``n_layer``, ...); the attention listing printed in the chapter uses it
    but never defines or imports it. These are the fields attention needs.

    Args:
        dim: model dim ``E``, the width of ``wo``'s output; a multiple of ``n_heads``.
        n_heads: number of heads ``H``; the head dim is ``dim // n_heads``.
        max_seq_len: longest sequence the module accepts (the size of the causal ``mask`` buffer).
        dropout: probability of both the attention-weight and the residual dropout, in ``[0, 1)``.
        n_embd: input width of ``wq``/``wk``/``wv``; ``None`` means ``dim``.
    """

    dim: int
    n_heads: int
    max_seq_len: int
    dropout: float = 0.0
    n_embd: int | None = None

    def __post_init__(self) -> None:
        _checks.check_positive_int("dim", self.dim)
        _checks.check_positive_int("n_heads", self.n_heads)
        _checks.check_divisible("dim", self.dim, "n_heads", self.n_heads)
        _checks.check_positive_int("max_seq_len", self.max_seq_len)
        self.dropout = _checks.check_probability("dropout", self.dropout)
        if self.n_embd is None:
            self.n_embd = self.dim
        _checks.check_positive_int("n_embd", self.n_embd)


def attention(
    query: Tensor, key: Tensor, value: Tensor, dropout: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention as Happy-LLM's first listing writes it, weights included.

    ``p_attn = softmax(query key^T / sqrt(d_k))``, optionally passed through a dropout module,
    and ``output = p_attn value``. Plain attention: no mask, no heads of its own (any leading
    dims are batch dims). Unlike upstream, the softmax runs in float32 for float16/bfloat16
    inputs (the arithmetic of [`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference]).

    Args:
        query: ``(..., L, d_k)`` queries.
        key: ``(..., S, d_k)`` keys, same leading dims as ``query``; ``S`` may differ from ``L``.
        value: ``(..., S, d_v)`` values.
        dropout: a module applied to the weights (upstream passes an ``nn.Dropout``), or None.

    Returns:
        ``(output, p_attn)``: ``(..., L, d_v)`` output and the ``(..., L, S)`` weights actually
        used, i.e. after ``dropout`` (rows sum to 1 only without dropout or in eval mode).
    """
    _checks.check_qkv(query, key, value, names=("query", "key", "value"))
    if dropout is not None and not isinstance(dropout, nn.Module):
        _checks.fail("dropout", "an nn.Module (such as nn.Dropout) or None", type(dropout).__name__, TypeError)
    out_NLD, p_attn_NLS = core.sdpa_reference(query, key, value, return_weights=True)
    if dropout is None:
        return out_NLD, p_attn_NLS
    # The output must use the weights the caller gets back, so recompute it after dropout.
    p_attn_NLS = dropout(p_attn_NLS)
    return p_attn_NLS @ value, p_attn_NLS


class MultiHeadAttention(nn.Module):
    """Happy-LLM's multi-head attention, causal or not, self- or cross-attention.

    Plain multi-head attention: separate bias-free ``wq``, ``wk``, ``wv`` projections split into
    ``H`` heads, ``softmax(q k^T / sqrt(D))`` per head, heads concatenated and projected by
    ``wo``; dropout on the weights (``attn_dropout``) and on the output (``resid_dropout``).
    Its peculiarity is the causal mask: an additive float buffer ``mask`` of shape
    ``(1, 1, max_seq_len, max_seq_len)``, ``-inf`` above the diagonal, registered only when
    ``is_causal``. The buffer is kept with upstream's shape and values so upstream state dicts
    load strictly, but attention itself goes through [`attnref.core.attend()`][attnref.core.attend] with
    ``is_causal=True`` (no mask is sliced or added per call).

    Fixed here (the first in chapter versions before August 2025 only, the second in the printed
    listing only, the rest in every source):

    - ``is_causal`` is never stored, so ``forward`` fails with ``AttributeError`` on
      ``self.is_causal``: it is stored.
    - ``math``, ``F`` (``torch.nn.functional``) and ``ModelArgs`` are used without being
      imported or defined: [`ModelArgs`][attnref.happy_llm.ModelArgs] is defined here, the math is in
      [`attnref.core`][attnref.core].
    - ``k`` and ``v`` are viewed with the query's ``seqlen``, so cross-attention with a key
      length ``S != L`` crashes in ``view``: each input is split with its own length.
    - A sequence longer than ``max_seq_len`` silently gets a truncated mask slice and then fails
      with a broadcast error: lengths above ``max_seq_len`` raise a ``ValueError`` naming the
      argument. The limit applies with and without ``is_causal`` (upstream's non-causal path has
      no mask and hence no limit) so the accepted inputs do not depend on the flag.

    With ``S > L`` and ``is_causal``, the mask is aligned bottom-right (query ``i`` sees keys
    ``0 .. S - L + i``, see [`attnref.core.causal_mask()`][attnref.core.causal_mask]); upstream's
    top-left slice ``mask[:, :, :L, :L]`` cannot express that case at all.

    Mirrors ``MultiHeadAttention`` in ``docs/chapter2/code/transformer.py`` of
    datawhalechina/happy-llm.

    Args:
        args: [`ModelArgs`][attnref.happy_llm.ModelArgs] with ``dim``, ``n_heads``, ``max_seq_len``,
            ``dropout``, ``n_embd``.
        is_causal: mask future keys and register the ``mask`` buffer.

    Attributes:
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``
            ([`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference]); set on the class or an instance.
    """

    attn_implementation: str = "sdpa"

    def __init__(self, args: ModelArgs, is_causal: bool = False) -> None:
        super().__init__()
        if not isinstance(args, ModelArgs):
            _checks.fail("args", "an attnref.happy_llm.ModelArgs", type(args).__name__, TypeError)
        # The dataclass is mutable: validate the values as they are now, not as constructed.
        args.__post_init__()
        if not isinstance(is_causal, bool):
            _checks.fail("is_causal", "a bool", f"{type(is_causal).__name__} {is_causal!r}", TypeError)
        self.is_causal = is_causal
        self.max_seq_len = args.max_seq_len
        self.n_embd = args.n_embd
        # Upstream's attribute name (chapter versions before edbcd3a called it n_local_heads).
        self.n_heads = args.n_heads
        self.head_dim = args.dim // args.n_heads
        inner = self.n_heads * self.head_dim
        self.wq = nn.Linear(args.n_embd, inner, bias=False)
        self.wk = nn.Linear(args.n_embd, inner, bias=False)
        self.wv = nn.Linear(args.n_embd, inner, bias=False)
        self.wo = nn.Linear(inner, args.dim, bias=False)
        self.attn_dropout = nn.Dropout(args.dropout)
        self.resid_dropout = nn.Dropout(args.dropout)
        if is_causal:
            # Upstream's additive mask (0 = may attend, -inf = blocked), kept for state_dict
            # compatibility; forward passes is_causal=True to core instead of adding it.
            full_11MM = torch.full((1, 1, args.max_seq_len, args.max_seq_len), float("-inf"))
            self.register_buffer("mask", torch.triu(full_11MM, diagonal=1))

    def _check_inputs(self, q: object, k: object, v: object) -> tuple[int, int, int]:
        _checks.check_choice("attn_implementation", self.attn_implementation, core.IMPLEMENTATIONS)
        for name, x in (("q", q), ("k", k), ("v", v)):
            _checks.check_floating(name, x)
        sizes = _checks.check_shape("q", q, "B L n_embd", n_embd=self.n_embd)
        B, L = sizes["B"], sizes["L"]
        S = _checks.check_shape("k", k, "B S n_embd", B=B, n_embd=self.n_embd)["S"]
        _checks.check_shape("v", v, "B S n_embd", B=B, S=S, n_embd=self.n_embd)
        _checks.check_same_dtype("q", q, "wq.weight", self.wq.weight)
        _checks.check_same_dtype("k", k, "q", q)
        _checks.check_same_dtype("v", v, "q", q)
        if L > self.max_seq_len:
            _checks.fail("q", f"length L <= max_seq_len={self.max_seq_len}", L)
        if S > self.max_seq_len:
            _checks.fail("k", f"length S <= max_seq_len={self.max_seq_len}", S)
        if self.is_causal and S < L:
            _checks.fail("k", f"length S >= L={L} with is_causal (keys include every query position)", S)
        return B, L, S

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attend from ``q`` to ``k``/``v``.

        Args:
            q: ``(B, L, n_embd)`` query inputs (before ``wq``).
            k: ``(B, S, n_embd)`` key inputs; ``S`` may differ from ``L`` (cross-attention);
                with ``is_causal``, ``S >= L``.
            v: ``(B, S, n_embd)`` value inputs.

        Returns:
            ``(B, L, dim)``.
        """
        B, L, S = self._check_inputs(q, k, v)
        H, D = self.n_heads, self.head_dim
        # Split the projection's last dim into heads, then move heads before length.
        xq_BHLD = self.wq(q).view(B, L, H, D).transpose(1, 2)
        xk_BHSD = self.wk(k).view(B, S, H, D).transpose(1, 2)
        xv_BHSD = self.wv(v).view(B, S, H, D).transpose(1, 2)
        dropout_p = self.attn_dropout.p if self.training else 0.0
        out_BHLD = core.attend(
            xq_BHLD, xk_BHSD, xv_BHSD,
            is_causal=self.is_causal, dropout_p=dropout_p, implementation=self.attn_implementation,
        )
        # reshape copies only when it must (the transposed layout), replacing contiguous().view.
        out_BLE = out_BHLD.transpose(1, 2).reshape(B, L, H * D)
        return self.resid_dropout(self.wo(out_BLE))
