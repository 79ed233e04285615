"""attnref plugged into other libraries.

Each submodule adapts attnref to one library and imports that library, which stays optional:
importing `attnref` or `attnref.integrations` imports none of them.

- [`attnref.integrations.transformers`][attnref.integrations.transformers]: an attention backend
  for Hugging Face transformers models (``attn_implementation="attnref"``).
"""
