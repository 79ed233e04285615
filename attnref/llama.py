"""LLaMA self-attention as Hugging Face transformers writes it, plus a blog note's simplified block.

[`LlamaAttention`][attnref.llama.LlamaAttention] mirrors ``LlamaAttention`` in transformers'
``src/transformers/models/llama/modeling_llama.py`` (huggingface/transformers, release 5.25.0): separate
``q_proj``/``k_proj``/``v_proj``/``o_proj`` projections, half-split rotary embeddings
(``rotate_half``) with float32 angles, grouped-query attention (G key/value heads shared by H query
heads), a causal mask, and a key/value cache ([`KVCache`][attnref.llama.KVCache]). Its ``state_dict`` is
the same as transformers' module, so weights load strictly in both directions.

[`SimpleLlamaAttention`][attnref.llama.SimpleLlamaAttention] is the block a blog note presents as
"LlamaAttention": plain
multi-head attention with none of the above. It is kept, under an honest docstring, because readers
meet it and should be able to run it next to the real thing.

Shape letters are those of [`attnref.core`][attnref.core]: B batch, L query length, S key length (cached plus
new tokens), H query heads, G key/value heads, D head dim, E model dim (``hidden_size``).
"""

from __future__ import annotations

from collections.abc import Collection

import einops
import torch
from torch import Tensor, nn

from attnref import _checks, core

__all__ = ["KVCache", "LlamaAttention", "SimpleLlamaAttention"]


class KVCache:
    """Post-RoPE keys and values of the tokens seen so far, for one attention layer.

    The counterpart of one layer of transformers' ``DynamicCache``: the caller creates it empty
    (``KVCache()``), passes it to every forward of one [`LlamaAttention`][attnref.llama.LlamaAttention],
    and each forward
    appends its new keys and values along the sequence axis. Keys are stored after the rotary
    embedding, so cached tokens are never rotated again. Keys and values keep the G key/value heads
    (not the H query heads), which is the memory saving of grouped-query attention.

    Attributes:
        key_BGSD: ``(B, G, S, D)`` cached keys, or ``None`` while empty.
        value_BGSD: ``(B, G, S, D)`` cached values, or ``None`` while empty.
    """

    def __init__(self) -> None:
        self.key_BGSD: Tensor | None = None
        self.value_BGSD: Tensor | None = None

    def __len__(self) -> int:
        """Cached length S (0 when empty)."""
        return 0 if self.key_BGSD is None else self.key_BGSD.shape[-2]

    def __repr__(self) -> str:
        held = "empty" if self.key_BGSD is None else f"key_BGSD {tuple(self.key_BGSD.shape)}"
        return f"KVCache({held})"

    def check(self, key_BGLD: Tensor, value_BGLD: Tensor) -> None:
        """Raise unless ``key_BGLD``/``value_BGLD`` can be appended to what the cache holds.

        Args:
            key_BGLD: ``(B, G, L, D)`` new keys.
            value_BGLD: ``(B, G, L, D)`` new values.

        Raises:
            TypeError: a non-tensor, or a dtype different from the cached one.
            ValueError: a batch size, head count or head dim different from the cached one.
        """
        sizes = _checks.check_shape("key_BGLD", key_BGLD, "B G L D")
        _checks.check_shape("value_BGLD", value_BGLD, "B G L D", **sizes)
        _checks.check_same_dtype("value_BGLD", value_BGLD, "key_BGLD", key_BGLD)
        if self.key_BGSD is None:
            return
        B, G, _, D = self.key_BGSD.shape
        if (key_BGLD.shape[0], key_BGLD.shape[1], key_BGLD.shape[3]) != (B, G, D):
            _checks.fail(
                "kv_cache",
                f"new keys of shape (B, G, L, D) with B={B}, G={G}, D={D} (what the cache holds)",
                tuple(key_BGLD.shape),
            )
        if key_BGLD.dtype != self.key_BGSD.dtype:
            _checks.fail("kv_cache", f"new keys of dtype {self.key_BGSD.dtype} (what the cache holds)",
                         key_BGLD.dtype, TypeError)

    def update(self, key_BGLD: Tensor, value_BGLD: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys and values and return everything cached so far.

        Like ``DynamicCache``, it concatenates (one copy of the cache per call); a preallocated
        cache would avoid the copy but is not what the mirrored code does.

        Args:
            key_BGLD: ``(B, G, L, D)`` post-RoPE keys of the new tokens.
            value_BGLD: ``(B, G, L, D)`` values of the new tokens.

        Returns:
            ``(key_BGSD, value_BGSD)``, each ``(B, G, S, D)`` with ``S = len(self)`` after the update.
        """
        self.check(key_BGLD, value_BGLD)
        if self.key_BGSD is None:
            self.key_BGSD, self.value_BGSD = key_BGLD, value_BGLD
        else:
            self.key_BGSD = torch.cat((self.key_BGSD, key_BGLD), dim=-2)
            self.value_BGSD = torch.cat((self.value_BGSD, value_BGLD), dim=-2)
        return self.key_BGSD, self.value_BGSD


class LlamaAttention(nn.Module):
    """LLaMA self-attention: rotary embeddings, grouped-query heads, causal mask, key/value cache.

    How it differs from plain multi-head attention:

    - **Rotary position embedding** on queries and keys (half-split convention: channel ``i`` turns
      with channel ``i + D/2``), with angles computed in float32 from the token positions. There is
      no position embedding added to the input. The frequencies follow ``rope_parameters``, the
      RoPE scaling of a checkpoint's config ([`attnref.core.rope_inv_freq()`][attnref.core.rope_inv_freq]).
    - **Grouped-query attention**: ``num_kv_heads`` (G) key/value heads, each shared by
      ``num_heads // num_kv_heads`` query heads ([`attnref.core.repeat_kv()`][attnref.core.repeat_kv]). G
      == H is MHA, G == 1 is multi-query attention.
    - **Causal** always, aligned bottom-right when a [`KVCache`][attnref.llama.KVCache] makes S > L;
      with ``sliding_window``, each query sees only the last ``sliding_window`` keys (Mistral's rule,
      [`attnref.core.sliding_window_mask()`][attnref.core.sliding_window_mask]).
    - **No biases** by default (``bias=False``, transformers' ``config.attention_bias``); Qwen2's
      layout is q/k/v biases without an ``o_proj`` bias. ``head_dim`` may differ from
      ``hidden_size // num_heads``.

    The attention kernel is chosen by the ``attn_implementation`` attribute (``"sdpa"`` or
    ``"eager"``), like transformers' ``config._attn_implementation``; set it on the instance or the
    class. Only the ``(B, L, E)`` output is returned, not the weights.

    Deviations from transformers, none of which change the function in float32: angles are turned
    into a cos/sin table once per device and dtype for the default positions (transformers
    recomputes them each step in ``LlamaRotaryEmbedding``); the rotation runs in float32 for
    float16/bfloat16 inputs (transformers casts cos/sin to the input dtype first); a query row
    with nothing to attend to gives zeros rather than NaN; and with ``sliding_window`` the
    [`KVCache`][attnref.llama.KVCache] keeps every key, the mask hiding the old ones (transformers'
    sliding-window cache drops them).

    Mirrors ``LlamaAttention`` in huggingface/transformers,
    ``src/transformers/models/llama/modeling_llama.py``, with the RoPE of ``LlamaRotaryEmbedding``
    in the same file; ``bias`` also covers ``Qwen2Attention`` (``models/qwen2/modeling_qwen2.py``)
    and ``sliding_window`` ``MistralAttention`` (``models/mistral/modeling_mistral.py``).

    Args:
        hidden_size: model dim E.
        num_heads: query heads H (``num_attention_heads``).
        num_kv_heads: key/value heads G (``num_key_value_heads``), dividing ``num_heads``;
            defaults to ``num_heads``.
        head_dim: D, even; defaults to ``hidden_size // num_heads``, which must then be exact.
        rope_theta: base of the rotary frequencies, unless ``rope_parameters`` has a ``rope_theta``.
        bias: which projections have a bias: ``True`` for all four (``attention_bias``), ``False``
            for none, or their names, such as ``("q_proj", "k_proj", "v_proj")`` for Qwen2.
        dropout: dropout on the attention weights, in training mode only (``attention_dropout``).
        rope_parameters: transformers' ``config.rope_parameters``: ``rope_type`` (one of
            [`attnref.core.ROPE_TYPES`][attnref.core.ROPE_TYPES]), ``rope_theta`` and the fields of
            that type; ``None`` is plain RoPE with ``rope_theta``.
        max_position_embeddings: the config's context length; required by ``rope_type``
            ``"dynamic"``, and the default ``original_max_position_embeddings`` of the others.
        sliding_window: keys visible to each query, itself included (``config.sliding_window``);
            ``None`` for full causal attention.
    """

    attn_implementation: str = "sdpa"

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        rope_theta: float = 10000.0,
        bias: bool | Collection[str] = False,
        dropout: float = 0.0,
        rope_parameters: dict | None = None,
        max_position_embeddings: int | None = None,
        sliding_window: int | None = None,
    ) -> None:
        super().__init__()
        _checks.check_positive_int("hidden_size", hidden_size)
        _checks.check_positive_int("num_heads", num_heads)
        if num_kv_heads is None:
            num_kv_heads = num_heads
        _checks.check_positive_int("num_kv_heads", num_kv_heads)
        _checks.check_divisible("num_heads", num_heads, "num_kv_heads", num_kv_heads)
        if head_dim is None:
            _checks.check_divisible("hidden_size", hidden_size, "num_heads", num_heads)
            head_dim = hidden_size // num_heads
        else:
            _checks.check_positive_int("head_dim", head_dim)
        _checks.check_even("head_dim", head_dim)
        if sliding_window is not None:
            _checks.check_positive_int("sliding_window", sliding_window)

        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.num_key_value_groups = num_heads // num_kv_heads
        self.dropout = _checks.check_probability("dropout", dropout)
        self.sliding_window = sliding_window
        # Scores are scaled by 1/sqrt(head_dim), also when head_dim != hidden_size // num_heads.
        self.scaling = head_dim**-0.5

        with_bias = _bias_layout(bias)
        self.q_proj = nn.Linear(hidden_size, num_heads * head_dim, bias="q_proj" in with_bias)
        self.k_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias="k_proj" in with_bias)
        self.v_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias="v_proj" in with_bias)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias="o_proj" in with_bias)

        # RoPE frequencies, as LlamaRotaryEmbedding holds them. transformers' dict wins over
        # rope_theta, as a config's rope_parameters wins over its rope_theta attribute.
        _checks.check_positive_number("rope_theta", rope_theta)
        if rope_parameters is not None and not isinstance(rope_parameters, dict):
            _checks.fail("rope_parameters", "a dict (a config's rope_parameters) or None",
                         type(rope_parameters).__name__, TypeError)
        self.rope_parameters = {"rope_type": "default", "rope_theta": float(rope_theta), **(rope_parameters or {})}
        self.rope_theta = float(self.rope_parameters["rope_theta"])
        self.max_position_embeddings = max_position_embeddings
        inv_freq, attention_scaling = core.rope_inv_freq(
            self.rope_parameters, head_dim, max_position_embeddings=max_position_embeddings
        )
        self._original_inv_freq = inv_freq
        # "dynamic" regrows its frequencies past this length, like LlamaRotaryEmbedding.max_seq_len_cached.
        self._max_seq_len_cached = max_position_embeddings
        self._set_frequencies(inv_freq, attention_scaling)

    def extra_repr(self) -> str:
        with_bias = [name for name in _PROJECTIONS if getattr(self, name).bias is not None]
        return (
            f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
            f"head_dim={self.head_dim}, rope_type={self.rope_parameters['rope_type']!r}, "
            f"rope_theta={self.rope_theta}, bias={with_bias}, dropout={self.dropout}, "
            f"sliding_window={self.sliding_window}"
        )

    # -- rotary embedding -------------------------------------------------------------------------

    def _set_frequencies(self, inv_freq_D2: Tensor, attention_scaling: float) -> None:
        self._inv_freq = inv_freq_D2
        self.attention_scaling = attention_scaling
        # (device, dtype) -> (cos_ND2, sin_ND2) for positions 0..N-1, built from the frequencies above.
        # A plain dict, not a buffer, so it stays out of the state_dict and needs no `.to()`.
        self._rope_table: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _follow_sequence_length(self, seq_len: int) -> None:
        """Change the frequencies that depend on the sequence length, as transformers'
        ``dynamic_rope_update`` does before each forward of ``LlamaRotaryEmbedding``.

        ``seq_len`` is the largest position + 1. ``"dynamic"`` regrows its frequencies when
        ``seq_len`` exceeds the longest length seen so far, and returns to the original ones once a
        sequence is shorter than ``max_position_embeddings`` again. ``"longrope"`` takes
        ``long_factor`` while ``seq_len`` exceeds ``original_max_position_embeddings`` and
        ``short_factor`` otherwise.
        """
        rope_type, longest = self.rope_parameters["rope_type"], self.max_position_embeddings
        if rope_type == "dynamic":
            seen = self._max_seq_len_cached
            if seq_len > seen:
                inv_freq, scaling = core.rope_inv_freq(
                    self.rope_parameters, self.head_dim, max_position_embeddings=longest, seq_len=seq_len
                )
                self._set_frequencies(inv_freq, scaling)
                self._max_seq_len_cached = seq_len
            if seq_len < longest < seen:
                self._set_frequencies(self._original_inv_freq, self.attention_scaling)
                self._max_seq_len_cached = longest
        elif rope_type == "longrope":
            # seq_len selects long_factor or short_factor; the attention scaling stays.
            inv_freq, _ = core.rope_inv_freq(
                self.rope_parameters, self.head_dim, max_position_embeddings=longest, seq_len=seq_len
            )
            if not torch.equal(inv_freq, self._inv_freq):
                self._set_frequencies(inv_freq, self.attention_scaling)

    def _cos_sin(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        # Angles in float32 whatever the input dtype: half precision cannot tell neighbouring
        # large positions apart. yarn and longrope scale cos and sin (so q.k by its square).
        angles = positions.to(torch.float32)[..., None] * self._inv_freq.to(positions.device)
        return (angles.cos() * self.attention_scaling).to(dtype), (angles.sin() * self.attention_scaling).to(dtype)

    def _default_cos_sin(
        self, start: int, L: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """cos/sin ``(L, D/2)`` for positions ``start .. start + L - 1``, from a table grown on demand."""
        key = (device, dtype)
        cos_ND2, sin_ND2 = self._rope_table.get(key, (None, None))
        if cos_ND2 is None or cos_ND2.shape[0] < start + L:
            # Double the table when it grows so decoding token by token rebuilds it O(log S) times.
            # Each entry equals what a per-call computation would give.
            N = max(start + L, 2 * (0 if cos_ND2 is None else cos_ND2.shape[0]))
            cos_ND2, sin_ND2 = self._cos_sin(torch.arange(N, device=device), dtype)
            self._rope_table[key] = (cos_ND2, sin_ND2)
        return cos_ND2[start : start + L], sin_ND2[start : start + L]

    def _rotary(
        self,
        x: Tensor,
        past: int,
        position_ids: Tensor | None,
        position_embeddings: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor]:
        """cos/sin broadcastable to ``(B, H, L, D/2)``, in float32 (float64 for float64 inputs)."""
        B, L, _ = x.shape
        # The rotation runs in float32 (float64 for float64 inputs); keep cos/sin in that dtype.
        dtype = torch.promote_types(x.dtype, torch.float32)
        if position_embeddings is not None:
            cos_BLD, sin_BLD = self._check_position_embeddings(position_embeddings, B, L)
            # transformers' layout repeats the D/2 values of each pair twice: (cos_i, cos_i).
            half = self.head_dim // 2
            return cos_BLD[:, None, :, :half].to(dtype), sin_BLD[:, None, :, :half].to(dtype)
        if position_ids is None:
            self._follow_sequence_length(past + L)
            return self._default_cos_sin(past, L, x.device, dtype)
        if self.rope_parameters["rope_type"] in ("dynamic", "longrope"):
            self._follow_sequence_length(int(position_ids.max()) + 1)
        cos_BLD2, sin_BLD2 = self._cos_sin(position_ids, dtype)
        return cos_BLD2[:, None], sin_BLD2[:, None]

    # -- argument checks --------------------------------------------------------------------------

    def _check_position_ids(self, position_ids: object, B: int, L: int) -> Tensor:
        _checks.check_tensor("position_ids", position_ids)
        if position_ids.is_floating_point() or position_ids.is_complex() or position_ids.dtype == torch.bool:
            _checks.fail("position_ids", "an integer tensor", position_ids.dtype, TypeError)
        if position_ids.dim() != 2 or position_ids.shape[0] not in (1, B) or position_ids.shape[1] != L:
            _checks.fail("position_ids", f"shape (B, L) = ({B}, {L}) or (1, {L})", tuple(position_ids.shape))
        return position_ids

    def _check_position_embeddings(self, position_embeddings: object, B: int, L: int) -> tuple[Tensor, Tensor]:
        if not isinstance(position_embeddings, (tuple, list)) or len(position_embeddings) != 2:
            _checks.fail("position_embeddings", "a pair (cos, sin)", type(position_embeddings).__name__, TypeError)
        D = self.head_dim
        for name, t in zip(("position_embeddings[0] (cos)", "position_embeddings[1] (sin)"), position_embeddings):
            _checks.check_floating(name, t)
            if t.dim() != 3 or t.shape[0] not in (1, B) or t.shape[1:] != (L, D):
                _checks.fail(name, f"shape (B, L, D) = ({B}, {L}, {D}) or (1, {L}, {D})", tuple(t.shape))
        return position_embeddings[0], position_embeddings[1]

    # -- forward ----------------------------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        position_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Causal self-attention of ``x`` over the cached tokens and itself.

        Args:
            x: ``(B, L, E)`` hidden states of the new tokens, in the parameters' dtype.
            position_ids: ``(B, L)`` or ``(1, L)`` integer positions for the rotary embedding;
                default ``len(kv_cache) + arange(L)``, continuing after the cached tokens.
            attention_mask: boolean (True = may attend), broadcastable to ``(B, H, L, S)`` with
                ``S = len(kv_cache) + L``; combined with the causal (or sliding-window) mask. A
                padding mask comes from [`attnref.core.padding_mask()`][attnref.core.padding_mask];
                an additive float mask (transformers' form) must first go through
                [`attnref.core.additive_to_bool()`][attnref.core.additive_to_bool].
            kv_cache: a [`KVCache`][attnref.llama.KVCache] to read past keys/values from and append this
                call's to.
            position_embeddings: ``(cos, sin)`` as transformers' ``LlamaRotaryEmbedding`` returns
                them, each ``(B, L, D)`` or ``(1, L, D)`` holding the D/2 values of the pairs twice
                (attention scaling included), to share one RoPE computation between layers. Used
                instead of the module's own RoPE; give it or ``position_ids``, not both.

        Returns:
            ``(B, L, E)``. Query rows whose keys are all masked come out of the attention as
            zeros (then ``o_proj``, so the output there is ``o_proj``'s bias).
        """
        sizes = _checks.check_shape("x", x, "B L E", E=self.hidden_size)
        _checks.check_floating("x", x)
        _checks.check_same_dtype("x", x, "q_proj.weight", self.q_proj.weight)
        B, L = sizes["B"], sizes["L"]
        if kv_cache is not None and not isinstance(kv_cache, KVCache):
            _checks.fail("kv_cache", "an attnref.llama.KVCache or None", type(kv_cache).__name__, TypeError)
        past = 0 if kv_cache is None else len(kv_cache)
        if position_ids is not None:
            self._check_position_ids(position_ids, B, L)
            if position_embeddings is not None:
                _checks.fail("position_ids", "None when position_embeddings is given (cos/sin carry the positions)",
                             "a tensor", TypeError)
        if attention_mask is not None:
            _checks.check_bool_mask("attention_mask", attention_mask, (B, self.num_heads, L, past + L))

        D = self.head_dim
        q_BHLD = einops.rearrange(self.q_proj(x), "B L (H D) -> B H L D", D=D)
        k_BGLD = einops.rearrange(self.k_proj(x), "B L (G D) -> B G L D", D=D)
        v_BGLD = einops.rearrange(self.v_proj(x), "B L (G D) -> B G L D", D=D)

        cos, sin = self._rotary(x, past, position_ids, position_embeddings)
        q_BHLD = core.apply_rope_half_split(q_BHLD, cos, sin)
        k_BGLD = core.apply_rope_half_split(k_BGLD, cos, sin)

        if kv_cache is not None:
            k_BGSD, v_BGSD = kv_cache.update(k_BGLD, v_BGLD)
        else:
            k_BGSD, v_BGSD = k_BGLD, v_BGLD
        k_BHSD = core.repeat_kv(k_BGSD, self.num_key_value_groups)
        v_BHSD = core.repeat_kv(v_BGSD, self.num_key_value_groups)

        # One query aligned bottom-right sees every key: skip the (1, S) causal mask a decode step
        # would otherwise build (transformers too sets is_causal only for L > 1, and only when no
        # mask was built).
        is_causal = L > 1
        S = past + L
        if self.sliding_window is not None and S > self.sliding_window:
            # Some keys are out of some query's window: the window mask replaces the causal one.
            window_LS = core.sliding_window_mask(L, S, window=self.sliding_window, device=x.device)
            attention_mask = window_LS if attention_mask is None else attention_mask & window_LS
            is_causal = False

        out_BHLD = core.attend(
            q_BHLD, k_BHSD, v_BHSD, attention_mask,
            is_causal=is_causal,
            scale=self.scaling,
            dropout_p=self.dropout if self.training else 0.0,
            implementation=self.attn_implementation,
        )
        return self.o_proj(einops.rearrange(out_BHLD, "B H L D -> B L (H D)"))


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def _bias_layout(bias: object) -> frozenset[str]:
    """The projections that get a bias: all for True, none for False, else the names given."""
    if isinstance(bias, bool):
        return frozenset(_PROJECTIONS if bias else ())
    if isinstance(bias, str) or not isinstance(bias, Collection):
        _checks.fail("bias", f"a bool or a collection of names from {_PROJECTIONS}",
                     f"{type(bias).__name__} {bias!r}", TypeError)
    unknown = sorted(set(bias) - set(_PROJECTIONS))
    if unknown:
        _checks.fail("bias", f"names from {_PROJECTIONS}", unknown)
    return frozenset(bias)


class SimpleLlamaAttention(nn.Module):
    """Plain multi-head self-attention under a LLaMA name, as a widely read blog note writes it.

    The note (a Chinese introduction to "LlamaAttention") presents this block as LLaMA's attention.
    It is the attention of "Attention Is All You Need" with dropout, and differs from the real
    [`LlamaAttention`][attnref.llama.LlamaAttention] in every way that makes LLaMA LLaMA:

    - **no rotary position embedding** (no position information at all inside the block);
    - **no grouped-query attention**: as many key/value heads as query heads;
    - **not causal**: every token sees every other unless ``attention_mask`` says otherwise;
    - **biases on every projection** (LLaMA has none);
    - **dropout on the output** (``proj_dropout``) as well as on the weights (``attn_dropout``);
    - **names** ``query``/``key``/``value``/``out_proj`` instead of ``q_proj``/``k_proj``/
      ``v_proj``/``o_proj``, so its weights do not load into a LLaMA checkpoint's layout;
    - no key/value cache, and ``head_dim`` is always ``hidden_size // num_attention_heads``.

    One change at the edge: the note *adds* ``attention_mask`` to the scores (an additive float
    mask); attnref takes a boolean mask (True = may attend) as everywhere else. Convert with
    [`attnref.core.additive_to_bool()`][attnref.core.additive_to_bool] (or back with
    [`attnref.core.bool_to_additive()`][attnref.core.bool_to_additive]). A
    query row with every key masked gives zeros here where the note gives NaN (``-inf`` mask) or a
    uniform average (``finfo.min`` mask).

    Mirrors the ``LlamaAttention`` class listed in that note; there is no upstream repository.

    Args:
        hidden_size: model dim E, a multiple of ``num_attention_heads``.
        num_attention_heads: heads H; D = E // H.
        dropout: probability of both dropouts, applied in training mode only.
    """

    attn_implementation: str = "sdpa"

    def __init__(self, hidden_size: int, num_attention_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        _checks.check_positive_int("hidden_size", hidden_size)
        _checks.check_positive_int("num_attention_heads", num_attention_heads)
        _checks.check_divisible("hidden_size", hidden_size, "num_attention_heads", num_attention_heads)
        dropout = _checks.check_probability("dropout", dropout)
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.head_dim = hidden_size // num_attention_heads

        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = nn.Dropout(dropout)
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Bidirectional multi-head attention of ``hidden_states`` over itself.

        Args:
            hidden_states: ``(B, L, E)``, in the parameters' dtype.
            attention_mask: boolean (True = may attend), broadcastable to ``(B, H, L, L)``.

        Returns:
            ``(B, L, E)``.
        """
        sizes = _checks.check_shape("hidden_states", hidden_states, "B L E", E=self.hidden_size)
        _checks.check_floating("hidden_states", hidden_states)
        _checks.check_same_dtype("hidden_states", hidden_states, "query.weight", self.query.weight)
        B, L = sizes["B"], sizes["L"]
        if attention_mask is not None:
            _checks.check_bool_mask("attention_mask", attention_mask, (B, self.num_attention_heads, L, L))

        H = self.num_attention_heads
        q_BHLD = einops.rearrange(self.query(hidden_states), "B L (H D) -> B H L D", H=H)
        k_BHLD = einops.rearrange(self.key(hidden_states), "B L (H D) -> B H L D", H=H)
        v_BHLD = einops.rearrange(self.value(hidden_states), "B L (H D) -> B H L D", H=H)
        # attn_dropout acts on the weights, inside the kernel; only its probability is used.
        context_BHLD = core.attend(
            q_BHLD, k_BHLD, v_BHLD, attention_mask,
            dropout_p=self.attn_dropout.p if self.training else 0.0,
            implementation=self.attn_implementation,
        )
        out_BLE = self.out_proj(einops.rearrange(context_BHLD, "B H L D -> B L (H D)"))
        return self.proj_dropout(out_BLE)
