"""MkDocs hook: remember what each build-time Python block printed, so that a rebuild with nothing
changed does not draw every figure again.

markdown-exec runs each ```python exec="true"``` block of a page (figures and tables drawn from the
package) and renders what it prints. Drawing them is most of a build's time, and the test suite
builds the site three times (the site, the offline bundle, `mkdocs serve`). This hook wraps the
function that runs a block: the printed text is stored under `.cache/exec/`, keyed by everything
that can change it:

- the block's code, as markdown-exec runs it (the drawing helpers of docs/snippets are pasted into
  it by the snippets extension, and the page's language is written in it);
- every file of the package (`attnref/`), of `docs/snippets/` and of `docs/data/` (the benchmark
  results the Performance page draws from);
- the versions of Python, torch, numpy, einops and matplotlib.

Blocks in a markdown-exec session share state with the blocks before them, so a session block's key
also holds the code of every block of its session before it in this build. A session block answered
from the cache does not run; when a later block of that session must run, the skipped ones run
first (their output discarded), so it sees the state it would have seen.

A block that raises is not stored, so a failing figure fails every build. Delete `.cache/exec/` to
draw everything again.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections import defaultdict
from functools import cache
from importlib.metadata import version
from pathlib import Path

from markdown_exec._internal.formatters import python as exec_python
from markdown_exec._internal.formatters.base import base_format
from markdown_exec._internal.main import formatters

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "exec"
INPUTS = ("attnref", "docs/snippets", "docs/data")


@cache
def fingerprint() -> str:
    """A digest of every input a block's output can depend on besides its own code (one per build
    process: the inputs do not change while the site builds)."""
    digest = hashlib.sha256()
    for name in ("python", "torch", "numpy", "einops", "matplotlib"):
        digest.update(f"{name}={platform.python_version() if name == 'python' else version(name)}\n".encode())
    for folder in INPUTS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# Per session, in this build: the key of its last block, and the blocks answered from the cache
# since its code last ran (each as the arguments markdown-exec ran it with).
_history: dict[str, str] = {}
_skipped: dict[str, list[dict]] = defaultdict(list)


def run_cached(code: str, **options) -> str:
    """markdown-exec's runner, answering from the cache when the block and its inputs are unchanged.
    ``options``: markdown-exec's (``session``, ``id``, ``returncode``, the block's other options)."""
    session = options.get("session")
    before = _history.get(session, "") if session else ""
    key = hashlib.sha256(f"{fingerprint()}\0{before}\0{code}".encode()).hexdigest()
    if session:
        _history[session] = key
    stored = CACHE / key[:2] / key
    if stored.is_file():
        if session:
            _skipped[session].append(dict(options, code=code))
        return stored.read_text(encoding="utf-8")
    for skipped in _skipped.pop(session, []) if session else []:
        exec_python._run_python(**skipped)  # the session's state as if nothing had been skipped
    output = exec_python._run_python(code, **options)
    stored.parent.mkdir(parents=True, exist_ok=True)
    partial = stored.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(output, encoding="utf-8")
    partial.replace(stored)  # atomic: parallel builds never read half a file
    return output


def format_python(**kwargs) -> str:
    return base_format(language="python", run=run_cached, **kwargs)


def on_config(config):
    _history.clear()  # `mkdocs serve` builds again in the same process
    _skipped.clear()
    formatters["python"] = format_python
    return config
