"""attnref: faithful, tested reference implementations of attention as real codebases write it.

Modules: :mod:`attnref.core` (shared math), :mod:`attnref.esm`, :mod:`attnref.flux`,
:mod:`attnref.llama`, :mod:`attnref.happy_llm`, :mod:`attnref.fused_qkv`, :mod:`attnref.convert`,
and :mod:`attnref.bench` (``python -m attnref.bench``).
"""

__version__ = "0.1.0"
