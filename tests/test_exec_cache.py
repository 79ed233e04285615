"""docs/hooks/exec_cache.py: a build answers a block from the cache only with the output running it
would give, including blocks of a markdown-exec session, which see the state left by the blocks
before them."""

import importlib.util

import pytest
from markdown_exec._internal.formatters import python as exec_python

from conftest import DOCS


@pytest.fixture
def hook(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("exec_cache_hook", DOCS / "hooks" / "exec_cache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    yield module
    exec_python._sessions_globals.pop("s", None)


def new_build(hook):
    """What a new build process starts from: no session state, the hook's bookkeeping reset."""
    exec_python._sessions_globals.pop("s", None)
    hook.on_config({})


def block(hook, code: str, session: str | None = "s") -> str:
    return hook.run_cached(code, returncode=0, session=session, id=None)


def counting(runs, code: str) -> str:
    """`code`, prefixed by a line that appends to the file `runs` each time the block runs."""
    return f"open({str(runs)!r}, 'a').write('x')\n{code}"


def test_an_unchanged_block_is_answered_without_running(hook, tmp_path):
    runs = tmp_path / "runs"
    code = counting(runs, "print(6 * 7)")
    assert block(hook, code, session=None) == "42\n"
    new_build(hook)
    assert block(hook, code, session=None) == "42\n"
    assert runs.read_text() == "x"
    assert block(hook, counting(runs, "print(6 * 8)"), session=None) == "48\n"  # changed: runs
    assert runs.read_text() == "xx"


def test_a_session_block_that_must_run_sees_the_state_of_the_skipped_ones(hook, tmp_path):
    runs = tmp_path / "runs"
    first = counting(runs, "x = 40\nprint(x)")
    assert block(hook, first) == "40\n"
    assert block(hook, "print(x + 2)") == "42\n"
    assert runs.read_text() == "x"

    new_build(hook)  # both answered from the cache: nothing runs
    assert block(hook, first) == "40\n"
    assert block(hook, "print(x + 2)") == "42\n"
    assert runs.read_text() == "x"

    new_build(hook)  # the second block changed: the first runs again before it, its output unused
    assert block(hook, first) == "40\n"
    assert runs.read_text() == "x"
    assert block(hook, "print(x + 3)") == "43\n"
    assert runs.read_text() == "xx"


def test_a_session_block_is_keyed_by_the_blocks_before_it(hook):
    assert block(hook, "x = 1") == ""
    assert block(hook, "print(x)") == "1\n"
    new_build(hook)
    assert block(hook, "x = 2") == ""
    assert block(hook, "print(x)") == "2\n"  # same code, other history: not the stored "1"
