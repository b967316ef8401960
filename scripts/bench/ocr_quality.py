"""OCR quality on the corpus pages that have ground truth: untxt's path against the raw CLI.

    .venv/bin/python scripts/bench/ocr_quality.py

Character error rate = edit distance / ground-truth length, after collapsing whitespace. The
untxt column reads each page the way the worker does (Pillow decode, grey pixels, warm
tesserocr engine); the baseline is the `tesseract` CLI on the same file, same language.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from common.settings import Settings  # noqa: E402
from worker.documents import iter_pages  # noqa: E402
from worker.ocr import OcrEngine  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
PAGES = [("phototest.tif", "image/tiff", "eng"), ("eurotext.tif", "image/tiff", "eng"),
         ("8087_054.3B.tif", "image/tiff", "eng"), ("vie_p1.png", "image/png", "vie")]  # fmt: skip


def normalise(text: str) -> str:
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(hypothesis: str, truth: str) -> float:
    truth, hypothesis = normalise(truth), normalise(hypothesis)
    return edit_distance(hypothesis, truth) / max(1, len(truth))


def main() -> int:
    tessdata = Settings.__dataclass_fields__["tessdata_dir"].default
    engine = OcrEngine(tessdata)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, mime, language in PAGES:
            path = CORPUS / name
            if not path.is_file():
                continue
            truth = path.with_suffix(".txt").read_text(encoding="utf-8")
            ours = "\n".join(
                engine.recognize(page.image, language, page.number).text
                for page in iter_pages(path, mime, 100_000_000, 300)
                if page.image is not None
            )
            subprocess.run(["tesseract", str(path), f"{tmp}/out", "-l", language], check=True, capture_output=True)
            cli = Path(f"{tmp}/out.txt").read_text(encoding="utf-8")
            rows.append((name, language, cer(ours, truth), cer(cli, truth)))
    print(f"{'page':18} {'lang':4} {'untxt CER':>10} {'CLI CER':>8}")
    for name, language, ours_cer, cli_cer in rows:
        print(f"{name:18} {language:4} {ours_cer:10.4f} {cli_cer:8.4f}")
    if rows:
        print(
            f"{'mean':18} {'':4} {sum(r[2] for r in rows) / len(rows):10.4f} {sum(r[3] for r in rows) / len(rows):8.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
