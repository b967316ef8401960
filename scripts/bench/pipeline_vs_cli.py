"""Throughput of the whole pipeline against raw `tesseract` on the same pages, in one run.

    ./start_services.sh && .venv/bin/python scripts/bench/pipeline_vs_cli.py

Pipeline: every document of the shared corpus is uploaded through the running API at once;
the clock runs from the first upload to the last task's "completed" event (upload, S3, PostgreSQL,
Redis, decoding/rasterising, OCR, rendering, result upload, bookkeeping).
Baseline: the same pages, already rasterised to files (not timed), through the `tesseract`
CLI with OMP_THREAD_LIMIT=1 and `xargs -P <cores>`, the parallelism the worker uses by default.
Both use language `eng`. Also prints the upload → completed latency of a one-page job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backend.users import create_user_with_key  # noqa: E402
from common import keys  # noqa: E402
from common.settings import effective_environ  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
DOCUMENTS = [
    "phototest.tif",
    "eurotext.tif",
    "8087_054.3B.tif",
    "typewriter.png",
    "vie_p1.png",
    "c03-29.pdf",
    "3small.pdf",
    "multipage.pdf",
]


def rasterise(documents: list[Path], out: Path, dpi: int) -> list[Path]:
    """Page images for the CLI: images as they are, PDF pages rendered like the worker does."""
    pages: list[Path] = []
    for doc in documents:
        if doc.suffix != ".pdf":
            target = out / doc.name
            shutil.copy(doc, target)
            pages.append(target)
            continue
        pdf = pdfium.PdfDocument(str(doc))
        for index in range(len(pdf)):
            target = out / f"{doc.stem}-{index + 1}.png"
            pdf[index].render(scale=dpi / 72, grayscale=True).to_pil().save(target)
            pages.append(target)
        pdf.close()
    return pages


def run_cli(pages: list[Path], parallel: int, out: Path) -> float:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    listing = "\n".join(str(p) for p in pages) + "\n"
    started = time.perf_counter()
    subprocess.run(
        [
            "xargs",
            "-P",
            str(parallel),
            "-I{}",
            "sh",
            "-c",
            f'tesseract "$1" "{out}/$(basename "$1")" -l eng >/dev/null 2>&1',
            "_",
            "{}",
        ],
        input=listing.encode(),
        env=env,
        check=True,
    )
    return time.perf_counter() - started


class Client:
    """Uploads through the API; learns of completions from the task-event channel, so the
    measurement does not load the machine with status polling while the workers run."""

    def __init__(self, api: str, key: str, redis_url: str) -> None:
        self.api = api
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.events = redis.Redis.from_url(redis_url).pubsub()
        self.events.subscribe(keys.TASK_EVENTS_CHANNEL)

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            resp = self.session.post(
                f"{self.api}/api/tasks", files={"file": (path.name, handle)}, data={"language": "eng"}, timeout=60
            )
        resp.raise_for_status()
        return resp.json()["data"]["taskId"]

    def wait_all(self, task_ids: set[str], timeout: float = 900) -> list[dict]:
        pending = set(task_ids)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(pending)
            message = self.events.get_message(timeout=1)
            if message and message["type"] == "message":
                event = json.loads(message["data"])
                if event["status"] in ("completed", "failed", "cancelled"):
                    pending.discard(event["taskId"])
        return [self.session.get(f"{self.api}/api/tasks/{t}", timeout=10).json()["data"] for t in task_ids]


def run_pipeline(client: Client, documents: list[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(documents)) as pool:
        task_ids = set(pool.map(client.upload, documents))
    tasks = client.wait_all(task_ids)
    elapsed = time.perf_counter() - started
    failed = [t for t in tasks if t["status"] != "completed"]
    if failed:
        raise SystemExit(f"{len(failed)} task(s) did not complete: {[t['error'] for t in failed]}")
    return elapsed, sum(t["result"]["pages"] for t in tasks)


def one_page_latency(client: Client, page: Path, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client.wait_all({client.upload(page)})
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=None, help="API base URL (default from API_HOST/API_PORT)")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="xargs -P for the CLI baseline")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (best and median shown)")
    args = parser.parse_args()
    env = effective_environ()
    api = args.api or f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8080')}"
    documents = [CORPUS / name for name in DOCUMENTS if (CORPUS / name).is_file()]
    if not documents:
        raise SystemExit(f"no corpus documents under {CORPUS}")
    if shutil.which("tesseract") is None:
        raise SystemExit("the tesseract CLI is not installed (scripts/setup.sh installs it)")
    _, key = asyncio.run(create_user_with_key(env["DATABASE_URL"], "bench@untxt.local"))
    client = Client(api, key, env["REDIS_URL"])
    client.wait_all({client.upload(documents[0])})  # warm-up: engines loaded, connections open

    with tempfile.TemporaryDirectory() as tmp:
        pages = rasterise(documents, Path(tmp), int(env.get("PDF_DPI", "300")))
        out = Path(tmp) / "out"
        out.mkdir()
        cli_times, pipe_times = [], []
        page_count = 0
        for _ in range(args.rounds):
            cli_times.append(run_cli(pages, args.parallel, out))
            elapsed, page_count = run_pipeline(client, documents)
            pipe_times.append(elapsed)
    latency = one_page_latency(client, CORPUS / "phototest.tif", runs=5)

    cli_best, pipe_best = min(cli_times), min(pipe_times)
    cli_rate, pipe_rate = len(pages) / cli_best, page_count / pipe_best
    print(
        f"documents: {len(documents)}  pages: {page_count} (CLI page files: {len(pages)})  "
        f"parallelism: {args.parallel}  rounds: {args.rounds}"
    )
    print(
        f"tesseract CLI (OMP_THREAD_LIMIT=1, xargs -P {args.parallel}): best {cli_best:.2f}s  "
        f"{cli_rate:.3f} pages/s  {cli_rate * 60:.1f} pages/min  (all: {', '.join(f'{t:.2f}' for t in cli_times)})"
    )
    print(
        f"untxt pipeline (upload → completed):      best {pipe_best:.2f}s  "
        f"{pipe_rate:.3f} pages/s  {pipe_rate * 60:.1f} pages/min  (all: {', '.join(f'{t:.2f}' for t in pipe_times)})"
    )
    print(
        f"ratio pipeline / CLI: best {pipe_rate / cli_rate:.2f}x  "
        f"median {statistics.median(cli_times) / statistics.median(pipe_times):.2f}x  (target >= 1.15x)"
    )
    print(
        f"one-page job (phototest.tif) upload → completed: median {statistics.median(latency):.3f}s  "
        f"min {min(latency):.3f}s  max {max(latency):.3f}s  (n={len(latency)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
