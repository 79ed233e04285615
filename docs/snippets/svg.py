# Shared by the figure blocks of every page: render a matplotlib figure as inline SVG with alt
# text, so pictures are made from attnref at build time and cannot drift from the code.
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "attnref", "font.size": 9, "svg.fonttype": "path"})


def show(fig, alt: str, caption: str) -> None:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):].replace("<svg", f'<svg role="img" aria-label="{alt}"', 1)
    print(f'<figure class="attnref-figure">{svg}<figcaption>{caption}</figcaption></figure>')


MASK_CMAP = ListedColormap(["#e8e8e8", "#3794ff"])  # False = blocked (grey), True = may attend (blue)


def draw_mask(ax, mask_LS, title: str, xlabel: str = "key j", ylabel: str = "query i") -> None:
    """A boolean (L, S) mask as a grid of cells: blue may attend, grey is blocked."""
    L, S = mask_LS.shape
    ax.imshow(mask_LS.int().numpy(), cmap=MASK_CMAP, vmin=0, vmax=1)
    ax.set_xticks(range(S))
    ax.set_yticks(range(L))
    ax.set_xticks(np.arange(-0.5, S), minor=True)
    ax.set_yticks(np.arange(-0.5, L), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)
