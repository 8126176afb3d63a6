"""Text colours meet WCAG AA (4.5:1 on the page background)."""

from __future__ import annotations

import pytest

from workbench.dashboard.theme import ACCENT, BAND_COLORS, TEXT, contrast_ratio


def test_contrast_ratio_matches_the_wcag_reference_values():
    assert contrast_ratio("#000000") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#767676") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("name", [*BAND_COLORS, "ACCENT", "TEXT"])
def test_every_text_colour_is_wcag_aa_on_white(name):
    color = {**BAND_COLORS, "ACCENT": ACCENT, "TEXT": TEXT}[name]
    assert contrast_ratio(color) >= 4.5, f"{name} {color}: {contrast_ratio(color):.2f}:1"
