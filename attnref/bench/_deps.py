"""The benchmark's optional dependencies (the ``bench`` extra): tqdm, psutil and matplotlib."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

EXTRA = "pip install 'attnref[bench]'"
"""The command that installs every optional dependency of the benchmark."""


class MissingExtra(ModuleNotFoundError):
    """An optional dependency of the benchmark is missing; the message says how to install it."""


def require(name: str, needed_for: str) -> ModuleType:
    """Import an optional dependency, or fail with a message that names the ``bench`` extra.

    Args:
        name: the module to import (``"tqdm"``, ``"psutil"``, ``"matplotlib"``).
        needed_for: what it is needed for, and how to do without it where one can.

    Returns:
        The imported module.

    Raises:
        MissingExtra: ``name`` is not installed (or cannot be imported).
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise MissingExtra(
            f"{name}: expected the package installed ({needed_for}), got {type(err).__name__}: {err}; "
            f"install the benchmark's optional dependencies with {EXTRA}",
            name=name,
        ) from None


class _NoBar:
    """Stands in for a tqdm bar when progress is off (tqdm need not be installed then)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, progress: bool):
    """A tqdm progress bar on stderr over ``total`` units of work, or a silent stand-in."""
    if not progress:
        return _NoBar()
    tqdm = require("tqdm", "the progress bar; --no-progress runs without it").tqdm
    return tqdm(total=total, desc=f"attnref.bench {desc}", unit=unit, file=sys.stderr)
