"""Reading a page the right way up and straight: orientation (0/90/180/270) and skew.

Checking every page first would cost every page: Tesseract's orientation detection (OSD) took
0.2-0.8 s per 300 dpi page here, 20-90 % of reading it, and less on a downscaled copy only by
losing its confidence. So the page is read as it is first, and only a reading that looks wrong
pays for a second look:

* **Orientation.** A page read upside down or sideways gives words Tesseract is unsure of (mean
  confidence 40-46 on the corpus pages turned 90/180°, against 83-95 upright), or words that
  stand on end. Only then does OSD run; its answer is used when its confidence reaches
  ``ROTATE_PAGES_THRESHOLD`` (default 5; it reported 9-16 on turned corpus pages, under 2 on
  pictures and charts). OCRmyPDF's ``--rotate-pages-threshold`` (14) guards a decision with no
  second check; here the turned page is read again and kept only if it reads at least as well
  (within 5 %), so a lower threshold is safe.
* **Skew.** Tesseract measures the skew of the lines it found while reading (free, within a few
  tenths of a degree up to about 8°). Lines tilted clockwise by 3° or more made it misread whole
  columns (CER +0.07 to +0.68 on corpus pages) while its confidence stayed high, so any page
  skewed by ``DESKEW_MIN_DEGREES`` (default 2°) or more is straightened and read again. Below
  2° straightening would gain little (CER at most +0.021 over the straight page, on every
  corpus page at ±1.5° and ±2°) for the price of a second reading. Past
  about 7° Tesseract's measure gives up (reports 0) while the words it did find still slope (also
  free to compute); such a page, and one that could not be read at all, is measured from its
  pixels instead, with the ``deskew`` package (Hough transform on a small copy, ±15°, ~35 ms).

An upright, straight page (the usual case) costs nothing more than before.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from deskew import determine_skew
from PIL import Image

from common.settings import Settings
from worker.geometry import turn_image
from worker.results import PageText

MAX_SKEW_DEGREES = 15.0
# A first reading below this mean word confidence is checked for orientation.
CHECK_BELOW_CONFIDENCE = 60.0
# The second reading must score at least this share of the first to replace it.
KEEP_SECOND_AT = 0.95
# Pixel skew is measured on a copy no larger than this: 35 ms and within 1° on the corpus pages
# (400 px: 20 ms, but off by up to 12°).
SKEW_SAMPLE_PIXELS = 600


@dataclass(frozen=True)
class UprightPolicy:
    """ROTATE_PAGES, ROTATE_PAGES_THRESHOLD, DESKEW, DESKEW_MIN_DEGREES (``upright_policy``); their
    defaults are the settings'."""

    rotate_pages: bool
    rotate_threshold: float
    deskew: bool
    deskew_min_degrees: float


def upright_policy(settings: Settings) -> UprightPolicy:
    return UprightPolicy(
        rotate_pages=settings.rotate_pages,
        rotate_threshold=settings.rotate_pages_threshold,
        deskew=settings.deskew,
        deskew_min_degrees=settings.deskew_min_degrees,
    )


@dataclass(frozen=True)
class Recognition:
    """One Tesseract pass: the text, and the skew Tesseract measured (clockwise degrees that
    would straighten the page; 0 when it found no lines)."""

    page: PageText
    skew: float


class Reader(Protocol):
    """What ``read_upright`` needs from an engine (worker/ocr.py's OcrEngine)."""

    def recognize(self, image: Image.Image, language: str, page_number: int, timeout_seconds: float) -> Recognition: ...

    def orientation(self, image: Image.Image) -> tuple[int, float] | None:
        """(clockwise degrees that would turn the page upright, confidence) or None."""


def read_upright(
    engine: Reader, image: Image.Image, language: str, number: int, timeout_seconds: float, policy: UprightPolicy
) -> PageText:
    started = time.monotonic()
    first = engine.recognize(image, language, number, timeout_seconds)
    suspect = _looks_wrong(first.page)
    rotation = 0
    if policy.rotate_pages and suspect:
        found = engine.orientation(image)
        if found is not None and found[1] >= policy.rotate_threshold:
            rotation = found[0]
    skew = 0.0
    if policy.deskew:
        # Tesseract's own measure is only good for lines it could read the way up they are, and
        # it reports 0 when its line finding gave up (7° and more); the words' own slope shows that.
        skew = first.skew
        missed = abs(skew) < policy.deskew_min_degrees and abs(word_slope(first.page)) >= policy.deskew_min_degrees
        if suspect or missed:
            skew = pixel_skew(image, rotation)
        if abs(skew) < policy.deskew_min_degrees or abs(skew) > MAX_SKEW_DEGREES:
            skew = 0.0
    if rotation == 0 and skew == 0.0:
        return first.page
    remaining = timeout_seconds - (time.monotonic() - started) if timeout_seconds > 0 else 0
    if timeout_seconds > 0 and remaining < 1:
        return first.page  # no time left for a second look; the first reading stands
    turned = turn_image(image, rotation, skew)
    try:
        second = engine.recognize(turned, language, number, remaining)
    finally:
        turned.close()
    if score(second.page) < KEEP_SECOND_AT * score(first.page):
        return first.page
    page = second.page
    page.rotation, page.skew = rotation, round(skew, 2)
    page.source_size = image.size
    page.seconds = round(time.monotonic() - started, 3)
    return page


def score(page: PageText) -> float:
    """Confidently read characters: garbage from a sideways page scores low, however long."""
    return sum(len(word.text) * word.confidence for word in page.words) / 100


def _looks_wrong(page: PageText) -> bool:
    words = [w for w in page.words if len(w.text) >= 3]
    if not words:
        return True
    if (page.mean_confidence or 0.0) < CHECK_BELOW_CONFIDENCE:
        return True
    # Tesseract reads some sideways pages well enough, with boxes standing on end.
    standing = sum(1 for w in words if w.height > 1.5 * w.width)
    return standing > len(words) / 2


def word_slope(page: PageText) -> float:
    """Clockwise degrees that would level the page's lines, from where Tesseract put each line's
    first and last word (the median over lines of two words or more; 0 if there are none)."""
    slopes = []
    for paragraph in page.paragraphs:
        for line in paragraph.lines:
            first, last = line.words[0], line.words[-1]
            run = (last.left + last.width / 2) - (first.left + first.width / 2)
            if len(line.words) >= 2 and run > 0:
                rise = (last.top + last.height) - (first.top + first.height)
                slopes.append(-math.degrees(math.atan2(rise, run)))
    return statistics.median(slopes) if slopes else 0.0


def pixel_skew(image: Image.Image, rotation: int) -> float:
    """Clockwise degrees that straighten the page's lines, after a quarter turn by ``rotation``."""
    sample = image.copy()
    sample.thumbnail((SKEW_SAMPLE_PIXELS, SKEW_SAMPLE_PIXELS), Image.Resampling.BOX)
    sample = turn_image(sample, rotation, 0.0)
    grey = sample if sample.mode == "L" else sample.convert("L")
    angle = determine_skew(np.asarray(grey), min_angle=-MAX_SKEW_DEGREES, max_angle=MAX_SKEW_DEGREES)
    # deskew reports the counter-clockwise turn that straightens the page.
    return 0.0 if angle is None else -float(angle)
