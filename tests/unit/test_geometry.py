"""Turning page images and mapping boxes back: the maps the searchable PDF's text layer relies on."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from worker.geometry import Affine, border_median, turn_image, turn_to_source, turned_size


def _marker_centre(image: Image.Image) -> tuple[float, float]:
    box = Image.eval(image.convert("L"), lambda v: 255 if v < 128 else 0).getbbox()
    assert box is not None
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("skew", [0.0, 7.0, -11.5])
def test_a_point_on_the_turned_image_maps_back_to_where_it_was(rotation: int, skew: float) -> None:
    page = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(page).rectangle((40, 30, 49, 39), fill=0)  # centre (45, 35)
    turned = turn_image(page, rotation, skew)
    assert turned.size == turned_size(300, 200, rotation, skew)
    x, y = turn_to_source(300, 200, rotation, skew).apply(*_marker_centre(turned))
    assert (x, y) == pytest.approx((45, 35), abs=1.0)


def test_quarter_turns_are_clockwise() -> None:
    page = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(page).rectangle((0, 0, 9, 9), fill=0)  # top-left corner
    assert _marker_centre(turn_image(page, 90, 0.0)) == (195, 5)  # now top-right


def test_affine_composition_applies_the_right_operand_first() -> None:
    move, double = Affine.translate(10, 0), Affine.scale(2, 2)
    assert (double @ move).apply(1, 1) == (22, 2)
    assert (move @ double).apply(1, 1) == (12, 2)


def test_uncovered_corners_take_the_paper_colour() -> None:
    white_on_black = Image.new("L", (200, 100), 0)
    turned = turn_image(white_on_black, 0, 10.0)
    assert turned.getpixel((0, 0)) == 0
    assert border_median(Image.new("RGB", (20, 20), (250, 240, 170))) == (250, 240, 170)
