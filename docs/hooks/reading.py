"""MkDocs hook: what readers see, beyond what Markdown does by itself.

- API pages in the reader's language. mkdocstrings reads the site language when its `on_config`
  runs, before mkdocs-static-i18n switches the language for each language's build, so both builds
  would get the first language's labels. Set its locale again after the switch.
- Printed output looks like output. The ```text block right after
  `<!--pytest-codeblocks:expected-output-->` (the block pytest-codeblocks compares with what the
  listing printed) gets the class `attnref-output` and a title in the page's language.
- No stray spaces in Chinese. A line break inside a paragraph is rendered as a space, which is
  right between English words and wrong between two Chinese characters; such lines are joined
  before Markdown sees them. Code blocks are left alone.

Only the HTML changes: the Markdown sources, which pytest-codeblocks reads, stay as written.
"""

import re

from mkdocs.plugins import event_priority

OUTPUT_TITLE = {"zh": "输出", "en": "Output"}

# Chinese characters, CJK punctuation, full-width forms and the curly quotes Chinese text uses.
_CJK = "[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef\u2018\u2019\u201c\u201d]"
# The last visible character of a line is Chinese: plain, inside emphasis, or a link's text.
_ENDS_CJK = re.compile(rf"{_CJK}(?:[*_~]*|\]\([^)\s]*\))$")
# The first visible character of a line is Chinese, possibly after emphasis or a link's bracket.
_STARTS_CJK = re.compile(rf"^[*_~\[]*{_CJK}")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_EXPECTED_OUTPUT = re.compile(
    r"^(?P<indent>[ \t]*)<!--pytest-codeblocks:expected-output-->\n(?P<blank>(?:[ \t]*\n)*)"
    r"(?P=indent)(?P<ticks>`{3,})text[ \t]*$",
    re.M,
)


def _language(config) -> str:
    return config.plugins["i18n"].current_language


@event_priority(-110)  # after mkdocs-static-i18n (-100) has set this build's language
def on_config(config):
    mkdocstrings = config.plugins["mkdocstrings"]
    # Read at render time by every `::: object` block of this build.
    mkdocstrings.handlers._locale = _language(config)
    return config


def _label_output(markdown: str, lang: str) -> str:
    title = OUTPUT_TITLE[lang]
    return _EXPECTED_OUTPUT.sub(
        lambda m: (f"{m['indent']}<!--pytest-codeblocks:expected-output-->\n{m['blank']}"
                   f'{m["indent"]}{m["ticks"]} {{ .text .attnref-output title="{title}" }}'),
        markdown,
    )


def _join_chinese_lines(markdown: str) -> str:
    out: list[str] = []
    fence = None
    for line in markdown.split("\n"):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            out.append(line)
            continue
        if opening:
            fence = opening.group(1)
            out.append(line)
            continue
        previous = out[-1] if out else ""
        if (
            _STARTS_CJK.match(line.lstrip())
            and _ENDS_CJK.search(previous)
            and not previous.lstrip().startswith(("#", "|", "<"))
            and not previous.endswith(("  ", "\\"))
        ):
            out[-1] = previous + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    lang = _language(config)
    markdown = _label_output(markdown, lang)
    if lang == "zh":
        markdown = _join_chinese_lines(markdown)
    return markdown
