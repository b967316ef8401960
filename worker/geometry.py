"""Turning page images upright and straight, and the affine maps that undo it.

Pixel coordinates are continuous, origin at the top-left corner, y down. A page is turned
clockwise by a multiple of 90 degrees (lossless transposes) and then by a small skew angle
(clockwise, about its centre, the canvas grown to keep every corner). Word boxes are found on
the turned image; ``turn_to_source`` maps them back onto the image as decoded, which is what the
searchable PDF's text layer needs, since it keeps the original page image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Affine:
    """x' = a*x + b*y + c, y' = d*x + e*y + f (Pillow's order; PDF's ``cm`` orders them a d b e c f)."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 1.0
    f: float = 0.0

    def __matmul__(self, other: Affine) -> Affine:
        """``self @ other`` applies ``other`` first, then ``self``."""
        return Affine(
            self.a * other.a + self.b * other.d,
            self.a * other.b + self.b * other.e,
            self.a * other.c + self.b * other.f + self.c,
            self.d * other.a + self.e * other.d,
            self.d * other.b + self.e * other.e,
            self.d * other.c + self.e * other.f + self.f,
        )

    def apply(self, x: float, y: float) -> tuple[float, float]:
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f

    @classmethod
    def scale(cls, sx: float, sy: float) -> Affine:
        return cls(a=sx, e=sy)

    @classmethod
    def translate(cls, dx: float, dy: float) -> Affine:
        return cls(c=dx, f=dy)

    def as_pdf(self) -> tuple[float, float, float, float, float, float]:
        return self.a, self.d, self.b, self.e, self.c, self.f

    def inverse(self) -> Affine:
        det = self.a * self.e - self.b * self.d
        a, b, d, e = self.e / det, -self.b / det, -self.d / det, self.a / det
        return Affine(a=a, b=b, c=-(a * self.c + b * self.f), d=d, e=e, f=-(d * self.c + e * self.f))

    @classmethod
    def turn_about(cls, x: float, y: float, clockwise_degrees: float) -> Affine:
        """A turn about (x, y), clockwise as seen with y pointing down (image coordinates)."""
        cos, sin = math.cos(math.radians(clockwise_degrees)), math.sin(math.radians(clockwise_degrees))
        return cls.translate(x, y) @ cls(a=cos, b=-sin, d=sin, e=cos) @ cls.translate(-x, -y)


_TRANSPOSE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def _quarter_turn_back(width: int, height: int, rotation: int) -> Affine:
    """Maps a point of the image turned clockwise by ``rotation`` back onto the unturned one."""
    if rotation == 90:
        return Affine(a=0, b=1, c=0, d=-1, e=0, f=height)
    if rotation == 180:
        return Affine(a=-1, b=0, c=width, d=0, e=-1, f=height)
    if rotation == 270:
        return Affine(a=0, b=-1, c=width, d=1, e=0, f=0)
    return Affine()


def _skew_back(width: int, height: int, skew: float) -> tuple[Affine, tuple[int, int]]:
    """(map from the skew-turned canvas back to the image, the canvas size)."""
    cos, sin = abs(math.cos(math.radians(skew))), abs(math.sin(math.radians(skew)))
    new_width, new_height = math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)
    # Undo the turn about the image's centre, then move the canvas's centre onto it.
    back = Affine.turn_about(width / 2, height / 2, -skew) @ Affine.translate(
        (width - new_width) / 2, (height - new_height) / 2
    )
    return back, (new_width, new_height)


def turned_size(width: int, height: int, rotation: int, skew: float) -> tuple[int, int]:
    if rotation in (90, 270):
        width, height = height, width
    return _skew_back(width, height, skew)[1] if skew else (width, height)


def turn_to_source(width: int, height: int, rotation: int, skew: float) -> Affine:
    """For an image of ``width`` x ``height`` turned by ``rotation`` then ``skew`` (clockwise
    degrees), the map from the turned image's coordinates back to the original's."""
    back = _quarter_turn_back(width, height, rotation)
    if not skew:
        return back
    quarter_width, quarter_height = (height, width) if rotation in (90, 270) else (width, height)
    return back @ _skew_back(quarter_width, quarter_height, skew)[0]


def turn_image(image: Image.Image, rotation: int, skew: float) -> Image.Image:
    """The image turned clockwise by ``rotation`` (a multiple of 90) and then by ``skew`` degrees;
    the corners a skew uncovers are filled with the page's own background (its border's median)."""
    turned = image.transpose(_TRANSPOSE[rotation]) if rotation in _TRANSPOSE else image
    if not skew:
        return turned if turned is not image else image.copy()
    if turned.mode not in ("L", "RGB"):
        turned = turned.convert("L")  # bicubic needs grey levels, not bits or a palette
    back, size = _skew_back(turned.width, turned.height, skew)
    result = turned.transform(
        size,
        Image.Transform.AFFINE,
        (back.a, back.b, back.c, back.d, back.e, back.f),
        resample=Image.Resampling.BICUBIC,
        fillcolor=border_median(turned),
    )
    result.info = dict(image.info)
    return result


def border_median(image: Image.Image) -> int | tuple[int, ...]:
    """The median of the outermost pixel rows and columns, per channel: the paper's colour
    (white on a usual scan, black on a white-on-black one)."""
    pixels = np.asarray(image.convert("L") if image.mode not in ("L", "RGB") else image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    median = np.median(border, axis=0)
    return tuple(int(v) for v in median) if median.ndim else int(median)
