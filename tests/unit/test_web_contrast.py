"""WCAG AA contrast (at least 4.5:1) of every text colour on every background of our pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cern_spawner.web import HUB_TEMPLATE_DIR, PICKER_TEMPLATE_DIR

pytestmark = pytest.mark.unit

PICKER_CSS = Path(PICKER_TEMPLATE_DIR) / "picker.css"
PENDING_CSS = Path(HUB_TEMPLATE_DIR) / "pending.css"


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def themes(css: Path) -> dict[str, dict[str, str]]:
    """The --cern-* colours of the light block (the first) and the dark block."""
    text = css.read_text()
    dark_at = text.index('[data-bs-theme="dark"]')
    found = {}
    for theme, block in (("light", text[:dark_at]), ("dark", text[dark_at:])):
        block = block[: block.index("}")]
        found[theme] = dict(re.findall(r"--cern-([a-z-]+):\s*(#[0-9a-fA-F]{6})", block))
    return found


CASES = [
    (PICKER_CSS, ["text", "muted", "ok", "wait", "no", "accent"], ["bg", "bg-selected", "bg-disabled"]),
    (PENDING_CSS, ["text", "muted", "warn", "no", "accent"], ["bg"]),
]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("css", "texts", "backgrounds"), CASES, ids=["picker", "pending"])
def test_text_colours_reach_aa(css, texts, backgrounds, theme):
    colours = themes(css)[theme]
    for text in texts:
        for background in backgrounds:
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"{theme}: --cern-{text} on --cern-{background} is {ratio:.2f}:1"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_primary_button_text_reaches_aa(theme):
    colours = themes(PENDING_CSS)[theme]
    assert contrast(colours["bg"], colours["accent"]) >= 4.5


def test_both_themes_define_the_same_colours():
    for css, _, _ in CASES:
        light, dark = themes(css).values()
        assert set(light) == set(dark)
