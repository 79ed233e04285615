"""attnref: faithful, tested reference implementations of attention as real codebases write it.

Modules: [`attnref.core`][attnref.core] (shared math), [`attnref.esm`][attnref.esm],
[`attnref.flux`][attnref.flux],
[`attnref.llama`][attnref.llama], [`attnref.happy_llm`][attnref.happy_llm],
[`attnref.fused_qkv`][attnref.fused_qkv], [`attnref.convert`][attnref.convert],
[`attnref.bench`][attnref.bench] (``python -m attnref.bench``), and
[`attnref.integrations.transformers`][attnref.integrations.transformers] (attnref as the attention
backend of Hugging Face transformers models; the only module that imports transformers).
"""

__version__ = "0.1.0"
