"""What the decoding sandbox costs: the same pages read through the worker's pool of sandbox
children, and by the very same reading code in threads of this process, in one run.

    .venv/bin/python -m scripts.bench.sandbox_cost [--rounds 3]

Both sides run ``worker/sandbox_work.py``'s handler (decode, blank check, upright reading,
Tesseract) with ``WORKER_CONCURRENCY`` engines; the sandboxed side adds what the isolation costs:
a process per engine, the request and the words over a pipe (pickled), resource limits re-armed
per request, the file opened in the child. Pages: the corpus's scans, PDF pages rendered to PNG
first (untimed) so that no PDFium runs in threads. Needs no stack (no stores are used).
Target (issue 11): sandboxed ≤ 1.10 × in-process.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from common.settings import Settings
from scripts.bench.pipeline_vs_cli import CORPUS, DOCUMENTS, rasterise
from worker.pool import OcrPool
from worker.sandbox_work import ChildSetup, ChildWork, ReadPage
from worker.upright import upright_policy

TIMEOUT_SECONDS = 300.0


def sandboxed(pool: OcrPool, pages: list[Path]) -> float:
    started = time.perf_counter()
    futures = [pool.submit_page(p, "image/png", 1, "eng", TIMEOUT_SECONDS, 0) for p in pages]
    for future in futures:
        future.result()
    return time.perf_counter() - started


class InProcessReaders:
    """One thread per engine, each owning its handler (an engine belongs to the thread that made
    it), taking the next page as the pool's reader threads do."""

    def __init__(self, setup: ChildSetup, size: int) -> None:
        self._local = threading.local()
        self._setup = setup
        self._threads = ThreadPoolExecutor(size, initializer=self._start)
        self._size = size

    def _start(self) -> None:
        self._local.work: ChildWork = self._setup()

    def read(self, pages: list[Path]) -> float:
        todo = list(reversed(pages))

        def drain() -> None:
            while todo:
                try:
                    path = todo.pop()
                except IndexError:
                    return
                self._local.work(ReadPage(str(path), "image/png", 1, "eng", TIMEOUT_SECONDS))

        started = time.perf_counter()
        for future in [self._threads.submit(drain) for _ in range(self._size)]:
            future.result()
        return time.perf_counter() - started

    def close(self) -> None:
        self._threads.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (medians shown)")
    args = parser.parse_args()
    settings = Settings.from_env()
    documents = [CORPUS / name for name in DOCUMENTS if (CORPUS / name).is_file()]
    if not documents:
        raise SystemExit(f"no corpus documents under {CORPUS}")
    setup = ChildSetup(settings.tessdata_dir, settings.max_image_pixels, settings.pdf_dpi, upright_policy(settings))
    with tempfile.TemporaryDirectory() as tmp:
        pngs = []
        for page in rasterise(documents, Path(tmp), settings.pdf_dpi):
            # Every page as PNG: one decoder and one MIME type on both sides.
            target = Path(tmp) / f"{page.stem}.bench.png"
            with Image.open(page) as image:
                image.save(target)
            pngs.append(target)
        pool = OcrPool(settings)
        readers = InProcessReaders(setup, pool.size)
        try:
            sandboxed(pool, pngs[:2])  # warm-up: children and engines loaded
            readers.read(pngs[:2])
            boxed, direct = [], []
            for _ in range(args.rounds):
                boxed.append(sandboxed(pool, pngs))
                direct.append(readers.read(pngs))
        finally:
            pool.close()
            readers.close()
    print(f"pages: {len(pngs)}  engines: {pool.size}  rounds: {args.rounds}")
    print(
        f"in-process threads: median {statistics.median(direct):.2f}s  (all: {', '.join(f'{t:.2f}' for t in direct)})"
    )
    print(f"sandbox children:   median {statistics.median(boxed):.2f}s  (all: {', '.join(f'{t:.2f}' for t in boxed)})")
    ratio = statistics.median(boxed) / statistics.median(direct)
    print(f"cost of the sandbox: {100 * (ratio - 1):+.1f} % (median times; target ≤ +10 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
