# Shared by the figure blocks of every page: draw with matplotlib at build time, emit inline SVG
# that follows the page. Pictures are made from attnref itself, so they cannot drift from the code.
#
# Conventions for every figure module (docs/snippets/fig_*.py):
# - Colours: draw only with the names below (INK, MUTED, GRID, PAPER, BLOCKED and the categorical
#   C0..C5). show() rewrites each to a CSS variable (--fig-ink, --fig-c0, ...) that
#   docs/assets/extra.css defines for Light+ and Dark+, so a figure switches with the palette
#   toggle. For a lighter shade use the same colour with alpha (a fill over the page background),
#   never another hex: show() refuses any colour it cannot map.
# - No raster: imshow() and colorbar() embed PNGs that cannot follow the scheme; use draw_cells().
# - Text in the page's language: a figure function takes `lang` ("zh" or "en") and picks every
#   label with tr(lang, en=..., zh=...). Text stays text (selectable, set in the page's font); no
#   mathtext ($...$), which cannot mix with Chinese: write Unicode (√, ·, θᵢ, dₖ) instead.
# - show(fig, alt, caption): alt and caption in the page's language as well.
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
import logging  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

# Name -> the Light+ value it is drawn with; show() turns it into var(--fig-<name>, <value>).
_ROLES = {
    "ink": "#1f1f1f",      # text, axes labels, ticks
    "muted": "#5f5f5f",    # axis lines, secondary marks
    "grid": "#d6d6d6",     # grid lines
    "paper": "#ffffff",    # the page background: gaps between cells
    "blocked": "#e4e4e4",  # a masked (blocked) cell
    "c0": "#0066b8",       # blue: "may attend", the main series
    "c1": "#b85500",       # orange
    "c2": "#2a7d2a",       # green
    "c3": "#c42b47",       # red: what goes wrong
    "c4": "#7a3fb0",       # purple
    "c5": "#16787f",       # teal
}
INK, MUTED, GRID, PAPER, BLOCKED = (_ROLES[k] for k in ("ink", "muted", "grid", "paper", "blocked"))
C0, C1, C2, C3, C4, C5 = (_ROLES[f"c{i}"] for i in range(6))
CATEGORICAL = [C0, C1, C2, C3, C4, C5]

# CJK glyphs need a font that has them for matplotlib to measure the text; the browser then sets
# it in the page's own fonts. Debian: fonts-wqy-microhei (installed by .ci/run).
_CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC",
              "Microsoft YaHei", "SimHei"]
# Bold CJK falls back to the regular face; matplotlib would log that for every bold label.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
_INSTALLED = {f.name for f in font_manager.fontManager.ttflist}
_CJK_AVAILABLE = [name for name in _CJK_FONTS if name in _INSTALLED]

plt.rcParams.update({
    "svg.fonttype": "none",
    "svg.hashsalt": "attnref",
    "font.size": 9,
    "font.family": ["DejaVu Sans", *_CJK_AVAILABLE],
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": MUTED,
    "axes.titlecolor": INK,
    "axes.facecolor": "none",
    "axes.prop_cycle": matplotlib.cycler(color=CATEGORICAL),
    "xtick.color": INK,
    "ytick.color": INK,
    "grid.color": GRID,
    "figure.facecolor": "none",
    "savefig.facecolor": "none",
    "legend.frameon": False,
    "patch.edgecolor": INK,
})


def tr(lang: str, en: str, zh: str) -> str:
    """The label in the page's language."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang: expected 'zh' or 'en', got {lang!r}")
    return zh if lang == "zh" else en


_HEX = re.compile(r"#[0-9a-fA-F]{6}\b")
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def _svg(fig) -> str:
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    if any(_CJK.search(t) for t in texts) and not _CJK_AVAILABLE:
        raise RuntimeError(
            "a figure has Chinese text but matplotlib finds no CJK font to measure it: install one of "
            f"{_CJK_FONTS} (Debian: apt-get install fonts-wqy-microhei)"
        )
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    if "<image" in svg:
        raise ValueError("figure: expected vector marks only, got an embedded raster (imshow/colorbar); "
                         "use draw_cells so colours follow the scheme")
    # The page's CSS sets the font family (figure.attnref-figure svg text); sizes and weights stay.
    svg = re.sub(r"font-family: [^;\"]*;?\s*", "", svg)
    by_value = {value: name for name, value in _ROLES.items()}

    def colour(match: re.Match) -> str:
        value = match.group(0).lower()
        if value not in by_value:
            raise ValueError(f"figure: expected colours from svg.py's roles, got {value}")
        return f"var(--fig-{by_value[value]}, {value})"

    return _HEX.sub(colour, svg)


def show(fig, alt: str, caption: str) -> None:
    svg = _svg(fig).replace("<svg", f'<svg role="img" aria-label="{alt}"', 1)
    print(f'<figure class="attnref-figure">{svg}<figcaption>{caption}</figcaption></figure>')


def draw_cells(ax, colours_RC, alphas_RC=None, texts_RC=None, fontsize: float = 8) -> None:
    """A grid of coloured cells, row 0 on top, cell (r, c) centred at (c, r) as imshow places it.

    colours_RC: rows of role colours; alphas_RC: opacities (1 when None); texts_RC: cell labels in INK.
    """
    R, C = len(colours_RC), len(colours_RC[0])
    for r in range(R):
        for c in range(C):
            alpha = 1.0 if alphas_RC is None else float(alphas_RC[r][c])
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colours_RC[r][c], alpha=alpha,
                                   edgecolor="none"))
            if texts_RC is not None and texts_RC[r][c] != "":
                ax.text(c, r, texts_RC[r][c], ha="center", va="center", fontsize=fontsize, color=INK)
    # Gaps in the page's colour between cells, drawn once over the fills.
    for r in range(R + 1):
        ax.plot([-0.5, C - 0.5], [r - 0.5, r - 0.5], color=PAPER, lw=1.5, solid_capstyle="butt")
    for c in range(C + 1):
        ax.plot([c - 0.5, c - 0.5], [-0.5, R - 0.5], color=PAPER, lw=1.5, solid_capstyle="butt")
    ax.set_xlim(-0.5, C - 0.5)
    ax.set_ylim(R - 0.5, -0.5)
    ax.set_aspect("equal")
    for side in ax.spines.values():
        side.set_visible(False)


def draw_mask(ax, mask_LS, title: str, xlabel: str, ylabel: str) -> None:
    """A boolean (L, S) mask as a grid of cells: blue may attend, grey is blocked."""
    allowed = np.asarray(mask_LS, dtype=bool)
    L, S = allowed.shape
    draw_cells(ax, [[C0 if allowed[i, j] else BLOCKED for j in range(S)] for i in range(L)])
    ax.set_xticks(range(S))
    ax.set_yticks(range(L))
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)


def mask_labels(lang: str) -> dict[str, str]:
    """Axis labels of a mask grid: rows are queries, columns keys."""
    return {"xlabel": tr(lang, "key j", "键 j"), "ylabel": tr(lang, "query i", "查询 i")}
