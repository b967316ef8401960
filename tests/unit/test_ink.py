"""The blank-page rule: nothing Tesseract could read is skipped; anything with a glyph is not.

(Held to the tesseract CLI on real and synthetic pages in tests/integration/test_parity.py.)
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from tests.support import text_page_png
from tests.variants import dark
from worker.ink import has_ink, otsu_threshold


def _text_page() -> Image.Image:
    return Image.open(io.BytesIO(text_page_png(["Invoice 4711", "Total due: 99 euros"]))).convert("L")


def test_uniform_and_specked_pages_are_blank() -> None:
    assert not has_ink(Image.new("L", (2480, 3508), 255))
    assert not has_ink(Image.new("L", (300, 300), 128))
    dusty = Image.new("L", (1000, 1000), 255)
    draw = ImageDraw.Draw(dusty)
    for x in range(50, 950, 90):
        draw.rectangle((x, x, x + 1, x + 1), fill=0)  # 2 x 2 px specks
    assert not has_ink(dusty)


def test_text_has_ink_at_any_contrast() -> None:
    page = _text_page()
    assert has_ink(page)
    # The scan that used to be taken for blank: every value between 0 and 17.
    squeezed = dark(page)
    assert squeezed.getextrema()[1] <= 17
    assert has_ink(squeezed)
    assert has_ink(Image.eval(page, lambda v: 255 - v))  # white on black
    assert has_ink(Image.eval(page, lambda v: 250 + v // 51))  # 250-255


def test_a_single_small_glyph_is_ink() -> None:
    page = Image.new("L", (2480, 3508), 255)
    ImageDraw.Draw(page).text((1200, 3300), "7", fill=200)
    assert has_ink(page)


def test_colour_ink_of_the_same_brightness_as_its_paper_is_ink() -> None:
    # Red on green with equal luminance: a grey copy is uniform, the channels are not.
    page = Image.new("RGB", (400, 200), (0, 128, 0))
    ImageDraw.Draw(page).rectangle((50, 50, 150, 80), fill=(251, 0, 0))
    low, high = page.convert("L").getextrema()
    assert high - low <= 1
    assert has_ink(page)


def test_noise_is_never_blank() -> None:
    noise = np.random.default_rng(1).normal(200, 30, (500, 500)).clip(0, 255).astype(np.uint8)
    assert has_ink(Image.fromarray(noise, mode="L"))


def test_otsu_splits_two_levels_between_them() -> None:
    histogram = [0] * 256
    histogram[10], histogram[200] = 100, 900
    assert 10 <= otsu_threshold(histogram) < 200
