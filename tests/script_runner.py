"""Runs Python scripts, each in a process of its own, forked from this one after the slow imports.

A fresh interpreter spends about 2 s importing torch (5 s with transformers) before a script's first
line; the downloads tests run some forty scripts. This process imports torch (and transformers,
where installed) once, runs nothing else, and forks a child per script: the child starts with
those modules loaded and nothing of any other script, runs the script as ``__main__`` in the
given directory with its output going to the given files, and exits with the script's status.

Protocol, one line per script on stdin: ``script<TAB>workdir<TAB>stdout file<TAB>stderr file``;
the answer on stdout is the exit status. Started by tests/test_downloads.py.
"""

import os
import runpy
import sys
import traceback

import torch  # noqa: F401  (loaded once, before any fork: no thread pool has started yet)

try:
    import transformers.models.llama.modeling_llama  # noqa: F401
except ImportError:
    pass


def run(script: str, workdir: str, out: str, err: str) -> int:
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.chdir(workdir)
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.argv = [script]
            sys.path[0] = os.path.dirname(script)
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main() -> None:
    for line in sys.stdin:
        print(run(*line.rstrip("\n").split("\t")), flush=True)


if __name__ == "__main__":
    main()
