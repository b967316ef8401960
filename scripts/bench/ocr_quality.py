"""OCR quality on the corpus pages that have ground truth, upright, turned and skewed: untxt with
its upright/deskew step off ("before") and on ("after"), against the raw CLI, in one run.

    .venv/bin/python -m scripts.bench.ocr_quality [--quick]

Character error rate = edit distance / ground-truth length, whitespace collapsed. untxt reads
each variant through the worker's own page path (``worker/reading.py``: decoding, blank-page
rule, pool of warm tesserocr engines); the baseline is the ``tesseract`` CLI on the same image
file, same language (it neither turns nor straightens pages). Variants: the page as scanned,
turned by 90/180/270 degrees, and skewed by a few degrees either way (``tests/variants.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from common.settings import REPO_ROOT, Settings
from tests.variants import cer, cli_text, rotated, skewed
from worker.pool import OcrPool
from worker.reading import read_pages
from worker.upright import upright_policy

CORPUS = REPO_ROOT.parent / "shared" / "corpus"
PAGES = [("phototest.tif", "eng"), ("eurotext.tif", "eng"), ("8087_054.3B.tif", "eng"), ("vie_p1.png", "vie")]
VARIANTS = {
    "upright": lambda im: im,
    "turned 90": lambda im: rotated(im, 90),
    "turned 180": lambda im: rotated(im, 180),
    "turned 270": lambda im: rotated(im, 270),
    "skewed -4": lambda im: skewed(im, -4.0),
    "skewed +3": lambda im: skewed(im, 3.0),
    "skewed +8": lambda im: skewed(im, 8.0),
    "skewed -12": lambda im: skewed(im, -12.0),
}


def read(pool: OcrPool, settings: Settings, path: Path, language: str) -> str:
    pages = read_pages(path, "image/png", language, pool, settings, time.monotonic() + 600)
    with contextlib.closing(pages):
        return "\n".join(page.text for page in pages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="upright and turned 180 only")
    args = parser.parse_args()
    settings = Settings(database_url="", redis_url="", s3_bucket="", kms_key_id="")
    before = settings.replace(rotate_pages=False, deskew=False)
    names = ["upright", "turned 180"] if args.quick else list(VARIANTS)
    # Two pools: the policy is fixed per pool, as in the worker.
    pools = {
        "before": OcrPool(before, size=1),
        "after": OcrPool(settings, size=1),
    }
    policy = upright_policy(settings)
    rows: list[tuple[str, str, float, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, language in PAGES:
                path = CORPUS / name
                if not path.is_file():
                    continue
                truth = path.with_suffix(".txt").read_text(encoding="utf-8")
                with Image.open(path) as original:
                    page = original.convert("L")
                    page.info["dpi"] = original.info.get("dpi", (300, 300))
                for variant in names:
                    image = VARIANTS[variant](page)
                    file = Path(tmp) / "page.png"
                    image.save(file, dpi=image.info.get("dpi", (300, 300)))
                    old = cer(read(pools["before"], before, file, language), truth)
                    new = cer(read(pools["after"], settings, file, language), truth)
                    cli = cer(cli_text(image, language, settings.tessdata_dir), truth)
                    rows.append((name, variant, old, new, cli))
    finally:
        for pool in pools.values():
            pool.close()
    print(f"{'page':16} {'variant':11} {'before':>7} {'after':>7} {'CLI':>7}   (CER; before = upright/deskew off)")
    for name, variant, old, new, cli in rows:
        print(f"{name:16} {variant:11} {old:7.4f} {new:7.4f} {cli:7.4f}")
    for variant in names:
        picked = [r for r in rows if r[1] == variant]
        if picked:
            means = [statistics.mean(r[i] for r in picked) for i in (2, 3, 4)]
            print(f"{'mean':16} {variant:11} {means[0]:7.4f} {means[1]:7.4f} {means[2]:7.4f}")
    print(
        f"rotation threshold {policy.rotate_threshold}, deskew from {policy.deskew_min_degrees} degrees; "
        f"means over all variants: before {statistics.mean(r[2] for r in rows):.4f}, "
        f"after {statistics.mean(r[3] for r in rows):.4f}, CLI {statistics.mean(r[4] for r in rows):.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
