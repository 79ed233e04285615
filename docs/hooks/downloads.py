"""MkDocs hook: every page with Python listings, also as a script and as a notebook.

For a page ``<lang>/<name>.md`` with at least one ```python listing (the listings pytest-codeblocks
runs), the build gets two more files, made from the Markdown the page is rendered from (after the
other hooks have run) and never committed:

- ``<lang>/downloads/attnref-<name>.py``: the listings in page order, one ``# %%`` cell each (a
  continued listing stays in the cell it continues), each followed by the output the page shows,
  as comments;
- ``<lang>/downloads/attnref-<name>.ipynb``: a Jupyter notebook (nbformat 4.5) whose Markdown cells
  are the page's prose in the page's language and whose code cells are the listings, each carrying
  the output the page shows.

The ``attnref-`` prefix keeps a downloaded ``esm.py`` from shadowing the ``esm`` package it imports.
A line of download links goes under the page's title, in the page's language.

Figure and table blocks (```python exec="true"```) are left out of both: they run at build time with
the drawing helpers of docs/snippets and print HTML for the page, so they are site machinery, not
code for a reader. The notebook says where one stood, with its caption.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

# Text that goes into the generated files and the link line, per language folder.
TEXT = {
    "en": {
        "header": "Python listings of the attnref page “{title}”, in page order;\n"
                  "what each prints on the page follows it as comments.",
        "output": "Output:",
        "figure": "*On the web page, a figure: {caption}*",
        "generated": "*On the web page, a table or figure computed when the site is built.*",
        "links": "Run this page yourself: [script (.py)]({py}){{ download=\"{py_name}\" }} · "
                 "[notebook (.ipynb)]({ipynb}){{ download=\"{ipynb_name}\" }}",
    },
    "zh": {
        "header": "attnref 页面《{title}》中的 Python 代码，按页面顺序排列；\n"
                  "每段代码在页面上的输出以注释附在其后。",
        "output": "输出：",
        "figure": "*网页上此处有一幅图：{caption}*",
        "generated": "*网页上此处有一张在构建网站时计算生成的表格或图。*",
        "links": "自己运行本页：[脚本 (.py)]({py}){{ download=\"{py_name}\" }} · "
                 "[笔记本 (.ipynb)]({ipynb}){{ download=\"{ipynb_name}\" }}",
    },
}

FENCE = re.compile(r"^(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
MARKER = re.compile(r"^<!--\s*pytest-codeblocks:(?P<kind>[\w-]+)\s*-->$")
CAPTION = re.compile(r'caption="((?:[^"\\]|\\.)*)"')


@dataclass
class Listing:
    code: str
    continued: bool = False
    output: str | None = None


@dataclass
class Generated:
    caption: str | None


def split_page(markdown: str) -> list[str | Listing | Generated]:
    """The page as prose (str), listings and build-time blocks, in order.

    Follows pytest-codeblocks: ```python is a listing, ``<!--pytest-codeblocks:cont-->`` before it
    continues the previous one, ``<!--pytest-codeblocks:expected-output-->`` makes the next fence
    the previous listing's output. Other fences (console, text) stay in the prose.
    """
    parts: list[str | Listing | Generated] = []
    prose: list[str] = []
    continued = output_next = False
    lines = markdown.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        fence, marker = FENCE.match(lines[i]), MARKER.match(lines[i].strip())
        if marker:
            continued |= marker["kind"] == "cont"
            output_next |= marker["kind"] == "expected-output"
            i += 1
            continue
        if not fence:
            prose.append(lines[i])
            i += 1
            continue
        ticks, info = fence["ticks"], fence["info"]
        end = i + 1
        while end < len(lines) and not re.match(rf"^{ticks[0]}{{{len(ticks)},}}\s*$", lines[end]):
            end += 1
        body = "".join(lines[i + 1:end])
        if output_next:
            next(p for p in reversed(parts) if isinstance(p, Listing)).output = body
            output_next = False
        elif info == "python" or info.startswith("python exec="):
            parts.append("".join(prose))
            prose = []
            if info == "python":
                parts.append(Listing(body, continued))
            else:
                caption = CAPTION.search(body)
                parts.append(Generated(caption[1] if caption else None))
            continued = False
        else:
            prose.extend(lines[i:end + 1])
        i = end + 1
    parts.append("".join(prose))
    return [p for p in parts if not isinstance(p, str) or p.strip()]


def title_of(markdown: str) -> str:
    match = re.search(r"^# (.+?)\s*(\{[^}]*\})?\s*$", markdown, re.M)
    return match[1] if match else ""


def script(parts: list, lang: str, title: str) -> str:
    """The listings as one Python file, ``# %%`` cells titled by their section."""
    text = TEXT[lang]
    out = ["".join(f"# {line}\n" for line in text["header"].format(title=title).splitlines())]
    section = title
    for part in parts:
        if isinstance(part, str):
            headings = re.findall(r"^#{1,6} (.+?)\s*(?:\{[^}]*\})?\s*$", part, re.M)
            section = headings[-1] if headings else section
        elif isinstance(part, Listing):
            cell = part.code if part.continued else f"\n\n# %% {section}\n{part.code}"
            if part.output is not None:
                shown = "".join(f"# {line}".rstrip() + "\n" for line in part.output.splitlines())
                cell += f"# {text['output']}\n{shown}"
            out.append(cell)
    return "".join(out)


def notebook_markdown(prose: str) -> str:
    """Page prose as Jupyter Markdown: no attribute lists, admonitions as quotes, links to other
    pages of the site as plain text (a notebook has no site around it)."""
    out = []
    lines = prose.splitlines()
    i = 0
    while i < len(lines):
        line = re.sub(r"\s*\{\s*[#.][^}]*\}\s*$", "", lines[i]) if lines[i].startswith("#") else lines[i]
        admonition = re.match(r'^(!!!|\?\?\?\+?) *(\w+)(?: +"(.*)")?\s*$', line)
        if admonition:
            out += [f"> **{admonition[3] or admonition[2].capitalize()}**", ">"]
            i += 1
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                out.append(f"> {lines[i][4:]}".rstrip())
                i += 1
            while out[-1] == ">":
                out.pop()
            out.append("")
            continue
        out.append(line)
        i += 1
    text = "\n".join(out).strip() + "\n"
    # [text](page.md#anchor) -> text; absolute links stay.
    return re.sub(r"(!?)\[([^\]]+)\]\((?![a-z]+:)[^)]*\)", r"\2", text)


def notebook(parts: list, lang: str) -> str:
    """The page as an nbformat 4.5 notebook."""
    cells = []

    def cell(kind: str, source: str, **extra) -> None:
        cells.append({"cell_type": kind, "id": f"cell-{len(cells)}", "metadata": {},
                      "source": source.rstrip("\n").splitlines(keepends=True), **extra})

    for part in parts:
        if isinstance(part, str):
            # One Markdown cell per section, so a reader can jump between them.
            for chunk in re.split(r"\n(?=#{1,6} )", notebook_markdown(part)):
                if chunk.strip():
                    cell("markdown", chunk)
        elif isinstance(part, Generated):
            text = TEXT[lang]
            cell("markdown", text["figure"].format(caption=part.caption) if part.caption else text["generated"])
        else:
            outputs = [] if part.output is None else [
                {"output_type": "stream", "name": "stdout", "text": part.output.splitlines(keepends=True)}]
            cell("code", part.code, execution_count=None, outputs=outputs)
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, ensure_ascii=False, indent=1) + "\n"


def downloads_of(src_uri: str) -> tuple[str, str]:
    """``en/llama.md`` -> (``en/downloads/attnref-llama.py``, ``en/downloads/attnref-llama.ipynb``)."""
    lang, _, rest = src_uri.partition("/")
    stem = "attnref-" + rest.removesuffix(".md").replace("/", "-")
    return f"{lang}/downloads/{stem}.py", f"{lang}/downloads/{stem}.ipynb"


# After the other hooks (reading.py joins Chinese lines, for one) have rewritten the Markdown: the
# notebook's prose is what the page shows.
@event_priority(-50)
def on_page_markdown(markdown, page, config, files):
    lang = page.file.src_uri.partition("/")[0]
    parts = split_page(markdown)
    if lang not in TEXT or not any(isinstance(p, Listing) for p in parts):
        return markdown
    title = title_of(markdown)
    # The downloads sit in the language's folder of the site, as the page does: /downloads/ for
    # the default language, /en/downloads/ for English (mkdocs-static-i18n has moved the page).
    root = f"{lang}/" if page.file.dest_uri.startswith(f"{lang}/") else ""
    py_uri, ipynb_uri = downloads_of(page.file.src_uri)
    for uri, content in ((py_uri, script(parts, lang, title)), (ipynb_uri, notebook(parts, lang))):
        file = File.generated(config, uri, content=content)
        file.dest_uri = root + uri.partition("/")[2]
        files.append(file)

    here = posixpath.dirname(page.file.src_uri)
    links = TEXT[lang]["links"].format(
        py=posixpath.relpath(py_uri, here), ipynb=posixpath.relpath(ipynb_uri, here),
        py_name=posixpath.basename(py_uri), ipynb_name=posixpath.basename(ipynb_uri),
    )
    # Under the title (the first line starting with "# "), or on top of a page without one.
    heading = re.search(r"^# .*\n", markdown, re.M)
    at = heading.end() if heading else 0
    return f"{markdown[:at]}\n{links}\n{{ .attnref-downloads }}\n\n{markdown[at:]}"
