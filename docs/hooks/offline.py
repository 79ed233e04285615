"""MkDocs hook: the offline build (`make offline`) needs no network, even to search.

``ATTNREF_OFFLINE=true`` turns on Material's offline plugin (see mkdocs.yml). The plugin makes page
URLs end in ``.html`` and inlines the search index into a script, so the site works opened from
disk; and it adds a script from unpkg.com, iframe-worker's shim, which stands in for the search web
worker that browsers refuse to start from a ``file://`` page. This hook serves that shim from the
npm package installed at build time (`npm ci`) instead, as katex.py does for KaTeX.
"""

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

SHIM = "assets/iframe-worker/shim.js"


def on_config(config):
    # Runs after the offline plugin's on_config, which added the unpkg.com address.
    polyfills = config.extra.get("polyfills", [])
    config.extra["polyfills"] = [SHIM if "iframe-worker" in str(url) else url for url in polyfills]


def on_files(files, config):
    if SHIM not in config.extra["polyfills"]:
        return files
    shim = Path(config.config_file_path).parent / "node_modules" / "iframe-worker" / "shim" / "index.js"
    if not shim.is_file():
        raise PluginError(f"iframe-worker is missing at {shim}: run `npm ci` (or `make setup`) first")
    files.append(File.generated(config, SHIM, abs_src_path=str(shim)))
    return files
