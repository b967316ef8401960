"""Synthetic variants of real pages, as scanners and phones produce them, and the ``tesseract``
CLI baseline they are held to. Shared by the parity tests and ``scripts/bench/ocr_quality.py``.

Each variant is deterministic (fixed seeds), so a failing page can be reproduced.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


def _image(values: np.ndarray, like: Image.Image) -> Image.Image:
    out = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    out.info["dpi"] = like.info.get("dpi", (300, 300))
    return out


def dark(image: Image.Image) -> Image.Image:
    """Values squeezed into 0-17, the dark low-contrast scan that was once taken for blank."""
    return _image(_grey(image) * 17 / 255, image)


def low_contrast(image: Image.Image) -> Image.Image:
    """Grey ink on grey paper: 110-150."""
    return _image(110 + _grey(image) * 40 / 255, image)


def faint(image: Image.Image) -> Image.Image:
    """Washed-out ink on white paper: 215-255."""
    return _image(215 + _grey(image) * 40 / 255, image)


def inverted(image: Image.Image) -> Image.Image:
    """White text on black."""
    return _image(255 - _grey(image), image)


def noisy(image: Image.Image) -> Image.Image:
    """Sensor noise (Gaussian, sigma 20) over the page."""
    noise = np.random.default_rng(7).normal(0, 20, size=(image.height, image.width))
    return _image(_grey(image) + noise, image)


def colour(image: Image.Image) -> Image.Image:
    """Dark blue ink on yellowish paper, in RGB: what the greyscale shortcut must read the same."""
    ink = _grey(image)[..., None] / 255
    paper, blue = np.array([250, 240, 170]), np.array([20, 30, 120])
    out = Image.fromarray(np.clip(np.rint(blue + ink * (paper - blue)), 0, 255).astype(np.uint8), mode="RGB")
    out.info["dpi"] = image.info.get("dpi", (300, 300))
    return out


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "dark": dark,
    "low-contrast": low_contrast,
    "faint": faint,
    "inverted": inverted,
    "noisy": noisy,
    "colour": colour,
}


def rotated(image: Image.Image, clockwise: int) -> Image.Image:
    """The page scanned a quarter turn (or two, or three) off."""
    turns = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
    out = image.transpose(turns[clockwise])
    out.info = dict(image.info)
    return out


def skewed(image: Image.Image, clockwise_degrees: float) -> Image.Image:
    """The page fed crooked: turned by a few degrees, the uncovered corners white."""
    grey = image.convert("L")
    out = grey.rotate(-clockwise_degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    out.info = dict(image.info)
    return out


def nearly_blank_pages() -> dict[str, Image.Image]:
    """Pages with nothing on them, which untxt may skip, and pages with almost nothing, which it
    must not: the CLI's reading of each is the reference."""
    white = Image.new("L", (2480, 3508), 255)
    dusty = white.copy()
    draw = ImageDraw.Draw(dusty)
    rng = np.random.default_rng(3)
    for x, y in rng.integers(50, 2400, size=(300, 2)):
        draw.rectangle((int(x), int(y), int(x) + 1, int(y) + 1), fill=int(rng.integers(0, 120)))
    grey = Image.new("L", (1700, 2200), 128)
    footer = white.copy()
    # A lone page number in pale grey, small, near the bottom: easy to call blank, and wrong.
    font = ImageFont.load_default(size=42)
    ImageDraw.Draw(footer).text((1150, 3300), "Page 17", font=font, fill=190)
    dark_footer = Image.eval(footer, lambda v: v * 17 // 255)
    pages = {"white": white, "dusty": dusty, "grey": grey, "footer": footer, "dark-footer": dark_footer}
    for page in pages.values():
        page.info["dpi"] = (300, 300)
    return pages


def cer(hypothesis: str, truth: str) -> float:
    """Character error rate: edit distance over the truth's length, whitespace collapsed."""
    truth, hypothesis = " ".join(truth.split()), " ".join(hypothesis.split())
    return Levenshtein.distance(hypothesis, truth) / max(1, len(truth))


def words(text: str) -> list[str]:
    return text.lower().split()


def similarity(ours: str, theirs: str) -> float:
    """Word-sequence similarity of two readings (1.0 = the same words in the same order)."""
    a, b = words(ours), words(theirs)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio()


def cli_text(image: Image.Image, language: str, tessdata_dir: str) -> str:
    """What the plain ``tesseract`` CLI reads from this image, given losslessly as a PNG file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.png"
        image.save(path, dpi=image.info.get("dpi", (300, 300)))
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        done = subprocess.run(
            ["tesseract", str(path), "stdout", "-l", language, "--tessdata-dir", tessdata_dir],
            check=True,
            capture_output=True,
            env=env,
        )
    return done.stdout.decode("utf-8")
