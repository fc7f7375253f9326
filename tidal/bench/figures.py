"""Rendering the bench's PNG figures (``tidal bench`` suites, bench/*.py ``--plot``; the README shows them).

matplotlib is imported on first use with the Agg backend, so importing a bench module stays cheap
and no display is needed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

FIGURE_DPI = 100
"""Resolution of the README's figures: about 1,200 pixels wide at their 12-inch width."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """Lay ``fig`` out, render it as PNG and release it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    pyplot().close(fig)
    return buf.getvalue()


def save_png(fig: Any, out: Path) -> None:
    """Lay ``fig`` out, write it to ``out`` (creating the folder) and release it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(fig))
