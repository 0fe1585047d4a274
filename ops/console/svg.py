"""Sparklines as inline SVG, drawn on the server: no chart library, nothing for the browser to
fetch. Pure functions of the numbers; the output is safe to embed (numbers and fixed text only).
"""

from __future__ import annotations

from collections.abc import Sequence

# The drawing's size in CSS pixels (it scales with the page).
WIDTH = 240
HEIGHT = 40
PAD = 2


def sparkline(values: Sequence[float | None], *, label: str) -> str:
    """A polyline of `values` (oldest first; None is drawn as 0) scaled to its own maximum,
    with `label` as the accessible title. An empty or all-zero series is a flat line."""
    points = [0.0 if v is None else float(v) for v in values] or [0.0]
    top = max(points) or 1.0
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)
    coords = " ".join(
        f"{PAD + i * step:.1f},{HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD):.1f}"
        for i, v in enumerate(points)
    )
    safe_label = "".join(c for c in label if c.isalnum() or c in " -_/()%")
    return (
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{safe_label}"><title>{safe_label}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/>'
        "</svg>"
    )
