"""MkDocs hook: serve KaTeX from the npm package installed at build time (`npm ci`).

Nothing third-party is committed and nothing is loaded from a CDN: the files under
node_modules/katex/dist are added to the site as assets/katex/.
"""

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

KEEP = {".css", ".js", ".woff2"}


def on_files(files, config):
    dist = Path(config.config_file_path).parent / "node_modules" / "katex" / "dist"
    if not (dist / "katex.min.js").is_file():
        raise PluginError(f"KaTeX is missing at {dist}: run `npm ci` (or `make setup`) first")
    for path in sorted(dist.rglob("*")):
        if path.is_file() and path.suffix in KEEP:
            uri = f"assets/katex/{path.relative_to(dist).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
