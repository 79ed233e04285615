"""``python -m attnref.bench``: see ``python -m attnref.bench --help``."""

from attnref.bench.cli import main

if __name__ == "__main__":
    main()
