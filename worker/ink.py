"""Is there anything on this page to read? The blank-page rule, built so it cannot drop text.

Skipping a blank page saves Tesseract's thresholding and layout pass, but calling a page with
text blank returns an empty result that looks like success, the worst outcome the service can
have. So the rule judges ink the way Tesseract itself will: after Otsu's threshold on the
page's own histogram. Otsu's split does not depend on how much contrast the scan has (it is the
same on a page whose values span 0-17 as on the stretched 0-255 one), so a dark or faint scan
keeps its text. The ink is the minority side of the split, which also covers white-on-black
pages. A page is blank only when that ink is nothing but specks no glyph could be made of: any
connected blob taller or wider than ``MAX_SPECK_PIXELS`` means the page goes to Tesseract. A
noisy page is therefore never blank; that costs time, never text.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

# The largest blob (in either direction) that is still dust, not a glyph. Tesseract reads no
# glyph under about 6 px; 2 px leaves a margin of three.
MAX_SPECK_PIXELS = 2
# Ink pixels in this number or more rule a page out of "blank" without looking at their shapes:
# dust that dense is not dust (and the answer "not blank" is always safe).
SPECK_BUDGET_PIXELS = 4000


def otsu_threshold(histogram: list[int]) -> int:
    """The grey level that best splits the histogram into two classes (values <= it are "dark")."""
    counts = np.asarray(histogram, dtype=np.float64)
    levels = np.arange(counts.size, dtype=np.float64)
    weight_dark = np.cumsum(counts)
    weight_light = weight_dark[-1] - weight_dark
    mass_dark = np.cumsum(counts * levels)
    mean_dark = np.divide(mass_dark, weight_dark, out=np.zeros_like(mass_dark), where=weight_dark > 0)
    mean_light = np.divide(
        mass_dark[-1] - mass_dark, weight_light, out=np.zeros_like(mass_dark), where=weight_light > 0
    )
    between = weight_dark * weight_light * (mean_dark - mean_light) ** 2
    return int(np.argmax(between[:-1]))


def has_ink(image: Image.Image) -> bool:
    """True unless the page holds nothing Tesseract could read (uniform, or only specks).

    A colour page is judged channel by channel, as Tesseract thresholds it: red text on a green
    background of the same brightness is ink, though its grey copy is uniform.
    """
    if image.mode == "RGB":
        return any(_channel_has_ink(channel) for channel in image.split())
    return _channel_has_ink(image if image.mode == "L" else image.convert("L"))


def _channel_has_ink(grey: Image.Image) -> bool:
    histogram = grey.histogram()
    low, high = grey.getextrema()
    if low == high:
        return False  # one value everywhere: no contrast at any scale
    threshold = otsu_threshold(histogram)
    dark = sum(histogram[: threshold + 1])
    light = grey.width * grey.height - dark
    ink_is_dark = dark <= light
    if min(dark, light) >= SPECK_BUDGET_PIXELS:
        return True
    pixels = np.asarray(grey)
    ink = pixels <= threshold if ink_is_dark else pixels > threshold
    rows, cols = np.nonzero(ink)
    # Label only the box around the ink: on a nearly blank page that is a small area.
    window = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    labels, count = ndimage.label(window, structure=np.ones((3, 3), dtype=bool))
    for blob in ndimage.find_objects(labels)[:count]:
        height, width = blob[0].stop - blob[0].start, blob[1].stop - blob[1].start
        if max(height, width) > MAX_SPECK_PIXELS:
            return True
    return False
