# Shared by the figure blocks of every page: render a matplotlib figure as inline SVG with alt
# text, so pictures are made from attnref at build time and cannot drift from the code.
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "attnref", "font.size": 9, "svg.fonttype": "path"})


def show(fig, alt: str, caption: str) -> None:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):].replace("<svg", f'<svg role="img" aria-label="{alt}"', 1)
    print(f'<figure class="attnref-figure">{svg}<figcaption>{caption}</figcaption></figure>')
