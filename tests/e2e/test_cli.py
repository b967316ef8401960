"""The installed ``untxt`` command against the real API and worker processes: what it prints
with --json, what it saves, and the exit codes scripts rely on (docs/client.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_file
from tests.e2e.conftest import ApiClient, RunningStack
from tests.support import dense_page_png, free_port, pdf_of, text_page_png
from untxt.cli import ExitCode

pytestmark = pytest.mark.e2e

# The console script that scripts/setup.sh installs with the project (pip install -e .).
UNTXT = Path(sys.executable).parent / "untxt"


class Shell:
    """Runs ``untxt`` as a user's shell would, configured by UNTXT_URL and UNTXT_API_KEY."""

    def __init__(self, url: str, key: str | None) -> None:
        assert UNTXT.is_file(), f"{UNTXT} is missing: scripts/setup.sh installs the project's console script"
        self.env = {k: v for k, v in os.environ.items() if k not in ("UNTXT_URL", "UNTXT_API_KEY")}
        self.env["UNTXT_URL"] = url
        if key is not None:
            self.env["UNTXT_API_KEY"] = key

    def __call__(self, *args: str | Path, code: int = ExitCode.OK) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [str(UNTXT), *map(str, args)], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        assert run.returncode == code, f"exit {run.returncode}, wanted {code}\n{run.stdout}\n{run.stderr}"
        return run

    def json(self, *args: str | Path, code: int = ExitCode.OK) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def shell(stack: RunningStack) -> Shell:
    return Shell(stack.api, ApiClient(stack.api, stack.settings).key)


def test_upload_wait_and_save_results_then_read_them_back(shell: Shell, tmp_path: Path) -> None:
    scan = corpus_file("phototest.tif")
    [outcome] = shell.json("upload", scan, "--tag", "cli run", "--format", "txt", "--format", "json", "-o", tmp_path)
    task = outcome["data"]
    assert (outcome["success"], task["status"], task["tag"]) == (True, "completed", "cli run")
    assert "quick brown dog" in Path(outcome["results"]["txt"]).read_text(encoding="utf-8")
    assert json.loads(Path(outcome["results"]["json"]).read_text(encoding="utf-8"))["pages"]
    task_id = task["taskId"]

    assert shell.json("status", task_id)["status"] == "completed"
    listed = shell.json("list", "--tag", "cli run")
    assert [t["taskId"] for t in listed["tasks"]] == [task_id]
    assert "quick brown dog" in shell("result", task_id, "--format", "txt").stdout
    assert shell.json("result", task_id, "--format", "html")["resultUrl"].startswith("http")
    human = shell("status", task_id).stdout
    assert task_id in human
    assert "cli run" in human

    assert shell.json("delete", task_id)["deleted"] is True
    assert shell.json("status", task_id, code=ExitCode.NOT_FOUND)["error"]["code"] == "task_not_found"


def test_a_folder_uploads_its_supported_files_in_batches(shell: Shell, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    for n in range(3):
        (folder / f"page{n}.png").write_bytes(text_page_png([f"Folder page {n}"]))
    (folder / "notes.txt").write_text("not sent: not a supported name")
    (folder / "zbroken.png").write_bytes(text_page_png(["broken"])[:200])  # PNG magic, truncated
    outcomes = shell.json("upload", folder, "--batch-size", "2", "--wait", "--tag", "folder", code=ExitCode.TASK_FAILED)
    assert [Path(o["path"]).name for o in outcomes] == ["page0.png", "page1.png", "page2.png", "zbroken.png"]
    statuses = [(o["data"]["status"], o["data"]["tag"]) for o in outcomes]
    assert statuses == [("completed", "folder")] * 3 + [("failed", "folder")]
    assert outcomes[3]["data"]["error"]["code"] == "corrupt_file"
    every = shell.json("list", "--tag", "folder", "--limit", "1", "--all")  # four pages along the cursor
    assert (every["total"], len(every["tasks"]), every["next"]) == (4, 4, None)


def test_exit_codes_scripts_can_rely_on(shell: Shell, stack: RunningStack, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("plain text is no scan")
    [refused] = shell.json("upload", notes, code=ExitCode.REJECTED)
    assert (refused["success"], refused["error"]["code"]) == (False, "unsupported_media_type")
    image = tmp_path / "a.png"
    image.write_bytes(text_page_png(["exit codes"]))
    assert shell.json("upload", image, "--tag", "bad\ttag", code=ExitCode.REJECTED)[0]["error"]["code"] == "invalid_tag"
    assert shell.json("status", str(uuid.uuid4()), code=ExitCode.NOT_FOUND)["error"]["code"] == "task_not_found"
    assert shell.json("status", "not-a-uuid", code=ExitCode.REJECTED)["error"]["code"] == "invalid_task_id"
    assert Shell(stack.api, "wrong-key").json("list", code=ExitCode.AUTH)["error"]["code"] == "unauthorized"
    assert Shell(stack.api, None).json("list", code=ExitCode.USAGE)["error"]["code"] == "missing_api_key"
    down = Shell(f"http://127.0.0.1:{free_port()}", "any").json("list", code=ExitCode.UNAVAILABLE)
    assert down["error"]["code"] == "connection_failed"
    shell("upload", image, "--priority", "11", code=ExitCode.USAGE)  # click refuses it before any request

    long_pdf = tmp_path / "long.pdf"
    long_pdf.write_bytes(pdf_of([dense_page_png(n) for n in range(1, 5)]))
    shell("upload", long_pdf, "--wait", "--timeout", "0.2", code=ExitCode.TIMEOUT)
    [waited] = shell.json("list", "--limit", "1")["tasks"]
    assert shell.json("cancel", waited["taskId"])["cancelRequested"] is True
    next_one = shell.json("upload", image, "--wait")[0]["data"]  # the queue moves on
    assert next_one["status"] == "completed"
    assert shell.json("result", waited["taskId"], code=ExitCode.REJECTED)["error"]["code"] == "result_not_ready"


def test_watch_reports_updates_as_json_lines_and_stops_when_idle(shell: Shell, tmp_path: Path) -> None:
    image = tmp_path / "w.png"
    image.write_bytes(text_page_png(["watched"]))
    task_id = shell.json("upload", image, "--wait")[0]["data"]["taskId"]
    lines = shell("watch", "--exit-when-idle", "--json").stdout.splitlines()
    updates = [json.loads(line) for line in lines]
    assert any(u["taskId"] == task_id and u["status"] == "completed" for u in updates)
