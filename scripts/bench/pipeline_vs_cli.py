"""Throughput of the whole pipeline against raw `tesseract` on the same pages, in one run.

    ./start_services.sh --infra-only && .venv/bin/python -m scripts.bench.pipeline_vs_cli

The script starts its own API and worker processes against the stack's stores, once with the
upright/deskew step on (the default) and once with it off (ROTATE_PAGES=false DESKEW=false),
in alternating rounds with the CLI; the stack's own worker must not be running (it would take
jobs too).
Pipeline: every document of the shared corpus is uploaded through the API at once;
the clock runs from the first upload to the last task's "completed" event (upload, S3, PostgreSQL,
Redis, decoding/rasterising, OCR, rendering, result upload, bookkeeping).
Baseline: the same pages, already rasterised to files (not timed), through the `tesseract`
CLI with OMP_THREAD_LIMIT=1 and `xargs -P <cores>`, the parallelism the worker uses by default.
Both use language `eng`. Also prints the upload → completed latency of a one-page job.
Ceiling: the same page files through warm tesserocr engines alone (one per process, loaded
before the clock starts, OMP_THREAD_LIMIT=1, the same parallelism): recognition with no pipeline
around it. CLI time / engine time is the most any pipeline on this engine can gain over the CLI,
since all it saves is the CLI's start-up and model load per page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import redis
import requests

from backend.users import create_user_with_key
from common.jobqueue import RedisNames
from common.settings import REPO_ROOT, Settings
from tests.e2e.conftest import start_service, stop_service
from tests.support import free_port

CORPUS = REPO_ROOT.parent / "shared" / "corpus"
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


_ENGINE = None  # one warm engine per ceiling process


def _load_engine(tessdata_dir: str) -> None:
    global _ENGINE
    import tesserocr

    _ENGINE = tesserocr.PyTessBaseAPI(path=tessdata_dir.rstrip("/") + "/", lang="eng")


def _recognise(page: Path) -> int:
    from PIL import Image

    assert _ENGINE is not None
    with Image.open(page) as image:
        _ENGINE.SetImage(image)
        return len(_ENGINE.GetUTF8Text())


def run_warm_engines(pages: list[Path], parallel: int, tessdata_dir: str) -> float:
    os.environ["OMP_THREAD_LIMIT"] = "1"  # read by libtesseract as each child loads it
    largest_first = sorted(pages, key=lambda p: -p.stat().st_size)  # as the worker schedules pages
    with multiprocessing.get_context("fork").Pool(parallel, _load_engine, (tessdata_dir,)) as pool:
        pool.map(_recognise, largest_first[:parallel], chunksize=1)  # engines loaded and warm
        started = time.perf_counter()
        pool.map(_recognise, largest_first, chunksize=1)
        return time.perf_counter() - started


class Client:
    """Uploads through the API; learns of completions from the task-event channel, so the
    measurement does not load the machine with status polling while the workers run."""

    def __init__(self, api: str, key: str, settings: Settings) -> None:
        self.api = api
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.events = redis.Redis.from_url(settings.redis_url).pubsub()
        self.events.subscribe(RedisNames(settings.redis_key_prefix).task_events)

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


CONFIGS = {"rotation+deskew on": {}, "rotation+deskew off": {"ROTATE_PAGES": "false", "DESKEW": "false"}}


class Services:
    """An API and a worker process of this checkout, on free ports, configured by ``overrides``."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.api_port, health_port = free_port(), free_port()
        env = {**os.environ, **overrides, "API_PORT": str(self.api_port), "WORKER_HEALTH_PORT": str(health_port)}
        self.procs = [
            start_service("worker", env, f"http://127.0.0.1:{health_port}/health"),
            start_service("backend", env, f"http://127.0.0.1:{self.api_port}/health"),
        ]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_service(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="xargs -P for the CLI baseline")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (best and median shown)")
    args = parser.parse_args()
    settings = Settings.from_env()
    documents = [CORPUS / name for name in DOCUMENTS if (CORPUS / name).is_file()]
    if not documents:
        raise SystemExit(f"no corpus documents under {CORPUS}")
    if shutil.which("tesseract") is None:
        raise SystemExit("the tesseract CLI is not installed (scripts/setup.sh installs it)")
    names = RedisNames(settings.redis_key_prefix)
    if redis.Redis.from_url(settings.redis_url).keys(names.heartbeat_prefix + ":*"):
        raise SystemExit("a worker is running; start the stores only (./start_services.sh --infra-only)")
    _, key = asyncio.run(create_user_with_key(settings.database_url, "bench@untxt.local"))

    with tempfile.TemporaryDirectory() as tmp:
        pages = rasterise(documents, Path(tmp), settings.pdf_dpi)
        out = Path(tmp) / "out"
        out.mkdir()
        cli_times: list[float] = []
        engine_times: list[float] = []
        pipe_times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        latency: list[float] = []
        page_count = 0
        for _ in range(args.rounds):
            cli_times.append(run_cli(pages, args.parallel, out))
            engine_times.append(run_warm_engines(pages, args.parallel, settings.tessdata_dir))
            for name, overrides in CONFIGS.items():
                services = Services(overrides)
                try:
                    client = Client(services.api, key, settings)
                    client.wait_all({client.upload(documents[0])})  # warm-up: engines loaded
                    elapsed, page_count = run_pipeline(client, documents)
                    pipe_times[name].append(elapsed)
                    if not latency and overrides == {}:
                        latency = one_page_latency(client, CORPUS / "phototest.tif", runs=5)
                finally:
                    services.stop()

    cli_best = min(cli_times)
    cli_rate = len(pages) / cli_best
    print(
        f"documents: {len(documents)}  pages: {page_count} (CLI page files: {len(pages)})  "
        f"parallelism: {args.parallel}  rounds: {args.rounds}"
    )
    print(
        f"tesseract CLI (OMP_THREAD_LIMIT=1, xargs -P {args.parallel}): best {cli_best:.2f}s  "
        f"{cli_rate:.3f} pages/s  {cli_rate * 60:.1f} pages/min  (all: {', '.join(f'{t:.2f}' for t in cli_times)})"
    )
    engine_rate = len(pages) / min(engine_times)
    print(
        f"warm engines alone (no pipeline, the ceiling): best {min(engine_times):.2f}s  {engine_rate:.3f} pages/s  "
        f"(all: {', '.join(f'{t:.2f}' for t in engine_times)})"
    )
    print(
        f"  ceiling / CLI: best {engine_rate / cli_rate:.2f}x  "
        f"median {statistics.median(cli_times) / statistics.median(engine_times):.2f}x  "
        "(no pipeline on this engine can beat the CLI by more)"
    )
    for name, times in pipe_times.items():
        rate = page_count / min(times)
        print(
            f"untxt, {name} (upload → completed): best {min(times):.2f}s  {rate:.3f} pages/s  "
            f"{rate * 60:.1f} pages/min  (all: {', '.join(f'{t:.2f}' for t in times)})"
        )
        print(
            f"  ratio pipeline / CLI: best {rate / cli_rate:.2f}x  "
            f"median {statistics.median(cli_times) / statistics.median(times):.2f}x  (target >= 1.4x); "
            f"pipeline / ceiling: median {statistics.median(engine_times) / statistics.median(times):.2f}x"
        )
    on, off = (statistics.median(t) for t in pipe_times.values())
    print(f"cost of rotation+deskew on these (upright) pages: {100 * (on / off - 1):+.1f} % (median times)")
    print(
        f"one-page job (phototest.tif) upload → completed: median {statistics.median(latency):.3f}s  "
        f"min {min(latency):.3f}s  max {max(latency):.3f}s  (n={len(latency)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
