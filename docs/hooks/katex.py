"""MkDocs hook: typeset every formula with KaTeX at build time, so pages need no script for math.

pymdownx.arithmatex (generic mode) leaves each formula as HTML-escaped TeX in an element of class
`arithmatex`: `<span class="arithmatex">\\(...\\)</span>` inline and
`<div class="arithmatex">\\[...\\]</div>` for display math. A build goes through MkDocs' events in
this order:

1. `on_page_content`, once per page as its Markdown is converted: collect the page's formulas;
2. `on_env`, once, after the last page is converted and before the first is written: render every
   formula of the build in one `node` process running the KaTeX npm package (JSON in on stdin, JSON
   out on stdout); a formula KaTeX rejects (in strict mode, so non-standard TeX counts) fails the
   build, naming the page and the TeX;
3. `on_post_page`, once per page as it is written: replace each formula's TeX with KaTeX's HTML.

mkdocs-static-i18n runs one build per language, so that is one `node` process per language.
The pages then need only KaTeX's stylesheet and the woff2 fonts it names; `on_files` adds those from
node_modules (installed by `npm ci`): nothing third-party is committed, nothing comes from a CDN.
"""

import html
import json
import re
import subprocess
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

# pymdownx.arithmatex's generic output; the TeX inside has no tags, only HTML escapes.
FORMULA = re.compile(r'<(span|div) class="arithmatex"([^>]*)>(.*?)</\1>', re.DOTALL)

# Runs in node: reads [[tex, displayMode], ...] and writes [{"html": ...} or {"error": ...}, ...].
RENDER_JS = """
const katex = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map(([tex, displayMode]) => {
    try {
      const options = { displayMode, throwOnError: true, strict: "error" };
      return { html: katex.renderToString(tex, options) };
    } catch (error) {
      return { error: error.message };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
"""

# The woff and ttf fallbacks that katex.min.css also names: every browser that runs the site loads
# woff2, and only woff2 is shipped, so the stylesheet is rewritten to name nothing that is missing.
OTHER_FONTS = re.compile(r',url\(fonts/[\w-]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)')

_formulas: dict[tuple[str, bool], set[str]] = {}  # (TeX, display?) -> pages it appears on
_rendered: dict[tuple[str, bool], str] = {}  # (TeX, display?) -> KaTeX's HTML


def _katex_dir(config) -> Path:
    katex = Path(config.config_file_path).parent / "node_modules" / "katex"
    if not (katex / "dist" / "katex.min.css").is_file():
        raise PluginError(f"KaTeX is missing at {katex}: run `npm ci` (or `make setup`) first")
    return katex


def _formula(match: re.Match) -> tuple[str, bool]:
    """The TeX of one arithmatex element without its delimiters, and whether it is display math."""
    tex = html.unescape(match.group(3)).strip()
    return tex[2:-2].strip(), tex.startswith("\\[")


def on_config(config):
    _formulas.clear()
    _rendered.clear()


def on_files(files, config):
    dist = _katex_dir(config) / "dist"
    css_path = dist / "katex.min.css"
    css = File.generated(config, "assets/katex/katex.min.css",
                         content=OTHER_FONTS.sub("", css_path.read_text(encoding="utf-8")))
    css.abs_src_path = str(css_path)  # mkdocs-static-i18n needs a source path for every file
    files.append(css)
    for font in sorted((dist / "fonts").glob("*.woff2")):
        uri = f"assets/katex/fonts/{font.name}"
        files.append(File.generated(config, uri, abs_src_path=str(font)))
    return files


def on_page_content(html_, page, config, files):
    for match in FORMULA.finditer(html_):
        _formulas.setdefault(_formula(match), set()).add(page.file.src_uri)
    return html_


def on_env(env, config, files):
    todo = sorted(_formulas)
    if not todo:
        return env
    node = subprocess.run(["node", "-e", RENDER_JS, str(_katex_dir(config))],
                          input=json.dumps(todo), capture_output=True, text=True, encoding="utf-8")
    if node.returncode != 0:
        raise PluginError(f"KaTeX (node) failed:\n{node.stderr}")
    errors = []
    for key, result in zip(todo, json.loads(node.stdout), strict=True):
        if "error" in result:
            pages = ", ".join(sorted(_formulas[key]))
            errors.append(f"{pages}: {result['error']}\n    TeX: {key[0]}")
        else:
            _rendered[key] = result["html"]
    if errors:
        raise PluginError("KaTeX cannot typeset these formulas:\n" + "\n".join(errors))
    return env


def on_post_page(output, page, config):
    def typeset(match: re.Match) -> str:
        tag, attributes = match.group(1), match.group(2)
        return f'<{tag} class="arithmatex"{attributes}>{_rendered[_formula(match)]}</{tag}>'

    return FORMULA.sub(typeset, output)
