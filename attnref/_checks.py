"""Argument checks shared by every public entry point.

Every message has one form: ``<argument>: expected <what>, got <what>``. The checks look at
shapes, dtypes and Python values only, never at tensor contents, so they never synchronise
a GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fail(name: str, expected: str, got: object, error: type[Exception] = ValueError, hint: str = "") -> None:
    raise error(f"{name}: expected {expected}, got {got}" + (f"; {hint}" if hint else ""))


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_tensor(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        fail(name, "a torch.Tensor", type(x).__name__, TypeError)
    return x


def check_floating(name: str, x: object) -> Tensor:
    check_tensor(name, x)
    if not x.is_floating_point():
        fail(name, "a floating-point tensor", x.dtype, TypeError)
    return x


def check_shape(name: str, x: object, spec: str, **sizes: int) -> dict[str, int]:
    """Check that ``x`` has the shape named by ``spec`` and return the sizes it binds.

    ``spec`` lists one letter per dimension ("B L E"); ``sizes`` pins some letters to values.
    A letter that appears twice must have the same size in both places.
    """
    check_tensor(name, x)
    letters = spec.split()
    pinned = ", ".join(f"{k}={v}" for k, v in sizes.items() if k in letters)
    expected = f"shape ({', '.join(letters)})" + (f" with {pinned}" if pinned else "")
    if x.dim() != len(letters):
        fail(name, f"{expected} ({len(letters)} dims)", f"{_fmt(x.shape)} ({x.dim()} dims)")
    bound = dict(sizes)
    for letter, size in zip(letters, x.shape):
        if bound.setdefault(letter, size) != size:
            fail(name, expected, _fmt(x.shape))
    return {k: bound[k] for k in letters}


def check_same_dtype(name: str, x: Tensor, reference_name: str, reference: Tensor) -> None:
    if x.dtype != reference.dtype:
        fail(name, f"dtype {reference.dtype} (the dtype of {reference_name})", x.dtype, TypeError)


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, "an int", f"{type(value).__name__} {value!r}", TypeError)
    if value <= 0:
        fail(name, "a positive int", value)
    return value


def check_lengths(L: object, S: object) -> int:
    """Query length ``L`` and key length ``S`` (default ``L``) of a bottom-right aligned mask,
    where the keys include every query position (``S >= L``); returns ``S``."""
    check_positive_int("L", L)
    S = L if S is None else check_positive_int("S", S)
    if S < L:
        fail("S", f"S >= L={L} (keys include every query position)", S)
    return S


def check_counts(name: str, counts: object) -> Tensor:
    """A ``(B,)`` integer tensor of token counts (sequence lengths, prefix lengths)."""
    check_shape(name, counts, "B")
    if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
        fail(name, "an integer tensor", counts.dtype, TypeError)
    return counts


def check_positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(name, "a positive number", f"{type(value).__name__} {value!r}", TypeError)
    if not value > 0:
        fail(name, "a positive number", value)
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        fail(name, "a bool", f"{type(value).__name__} {value!r}", TypeError)
    return value


def check_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if value % by != 0:
        fail(name, f"a multiple of {by_name}={by}", value)


def check_even(name: str, value: int) -> None:
    if value % 2 != 0:
        fail(name, "an even number (RoPE rotates channels in pairs)", value)


def check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(name, "a float in [0, 1)", f"{type(value).__name__} {value!r}", TypeError)
    if not 0.0 <= value < 1.0:
        fail(name, "a float in [0, 1)", value)
    return float(value)


def check_bool_mask(name: str, mask: object, target: tuple[int, ...], letters: str = "B H L S") -> Tensor:
    """A boolean mask (True = may attend) whose dims are each 1 or the target size."""
    check_tensor(name, mask)
    # Shape first: a tokenizer's (B, S) integer mask is wrong in both; the shape hint fixes both.
    check_mask_shape(name, mask, target, letters)
    if mask.dtype != torch.bool:
        fail(
            name,
            "a boolean mask (True = may attend); convert an additive mask with "
            "attnref.core.additive_to_bool",
            mask.dtype,
            TypeError,
        )
    return mask


def check_mask_shape(name: str, mask: Tensor, target: tuple[int, ...], letters: str = "B H L S") -> None:
    """A mask broadcastable to ``target``; a ``(B, S)`` padding mask given for a 4-D mask gets a hint.

    Aligned right, a ``(B, S)`` mask reads as ``(L, S)``. It fails here unless ``B`` is 1 (then
    the two readings agree) or ``B == L`` (then no shape check can tell them apart).
    """
    hint = ""
    if len(target) == 4 and mask.dim() == 2 and tuple(mask.shape) == (target[0], target[-1]):
        # An integer 0/1 mask (a tokenizer's) becomes boolean; a float one stays additive.
        as_bool = ".bool()" if mask.dtype != torch.bool and not mask.is_floating_point() else ""
        hint = (
            "a (B, S) key-padding mask needs a head and a query axis: build it with "
            f"attnref.core.padding_mask(lengths, S) or write mask{as_bool}[:, None, None, :]"
        )
    check_broadcastable(name, mask, target, letters, hint)


def check_broadcastable(
    name: str, x: Tensor, target: tuple[int, ...], letters: str = "B H L S", hint: str = ""
) -> None:
    """Each dim of ``x``, aligned right, is 1 or the target size: never a silent broadcast."""
    names = letters.split()
    expected = f"a shape broadcastable to ({', '.join(names)}) = {_fmt(target)}"
    if x.dim() > len(target):
        fail(name, expected, _fmt(x.shape), hint=hint)
    for size, want in zip(reversed(x.shape), reversed(target)):
        if size not in (1, want):
            fail(name, expected, _fmt(x.shape), hint=hint)


def check_qkv(q: object, k: object, v: object, names: tuple[str, str, str] = ("q", "k", "v")) -> tuple[int, int]:
    """Queries ``(..., L, D)``, keys ``(..., S, D)`` and values ``(..., S, Dv)`` of one dtype,
    with the same leading dims; returns ``(L, S)``. ``names`` are the caller's argument names."""
    nq, nk, nv = names
    for name, x in zip(names, (q, k, v)):
        check_floating(name, x)
        if x.dim() < 2:
            fail(name, "at least 2 dims (..., length, head_dim)", tuple(x.shape))
    check_same_dtype(nk, k, nq, q)
    check_same_dtype(nv, v, nq, q)
    lead = tuple(q.shape[:-2])
    for name, x in ((nk, k), (nv, v)):
        if tuple(x.shape[:-2]) != lead:
            fail(name, f"leading dims {lead} (those of {nq}; use repeat_kv for GQA)", tuple(x.shape))
    if k.shape[-1] != q.shape[-1]:
        fail(nk, f"head dim {q.shape[-1]} (that of {nq})", k.shape[-1])
    if v.shape[-2] != k.shape[-2]:
        fail(nv, f"length {k.shape[-2]} (that of {nk})", v.shape[-2])
    return q.shape[-2], k.shape[-2]


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        fail(name, f"one of {choices}", repr(value))
    return value
