"""attnref: faithful, tested reference implementations of attention as real codebases write it.

Modules: [`attnref.core`][attnref.core] (shared math), [`attnref.atlas`][attnref.atlas] (every
mask in every API's spelling), [`attnref.esm`][attnref.esm],
[`attnref.flux`][attnref.flux],
[`attnref.llama`][attnref.llama], [`attnref.happy_llm`][attnref.happy_llm],
[`attnref.fused_qkv`][attnref.fused_qkv], [`attnref.convert`][attnref.convert],
[`attnref.bench`][attnref.bench] (``python -m attnref.bench``), and
[`attnref.integrations.transformers`][attnref.integrations.transformers] (attnref as the attention
backend of Hugging Face transformers models; the only module that imports transformers).

``import attnref`` imports none of them: each is imported the first time it is used, so
``attnref.llama.LlamaAttention`` works after a bare ``import attnref`` and costs only what it needs.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["core", "esm", "flux", "llama", "happy_llm", "fused_qkv", "convert", "bench", "integrations"]


def __getattr__(name: str):
    # Called only for names not yet in the module: the import binds the submodule here.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
