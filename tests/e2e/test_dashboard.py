"""The web dashboard in a real browser (Debian's Chromium, headless, driven by Playwright)
against real API and worker processes: sign in, upload a real scan through the page, follow it
over the WebSocket to ``completed``, open its result; a phone-width window too.

Screenshots are kept in ``logs/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from common.settings import REPO_ROOT
from tests.conftest import corpus_file
from tests.e2e.conftest import ApiClient, RunningStack, service_env, start_service, stop_service
from tests.support import free_port, text_page_png

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright never downloads a browser here
# Without the background-networking flags Chromium phones home at start, and this machine's
# closed network refuses it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "logs" / "screenshots"
PHONE = {"width": 375, "height": 740}
UNTHROTTLED = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def user(stack: RunningStack) -> ApiClient:
    # In a thread of its own: creating the key runs asyncio.run(), which cannot run in a thread
    # whose event loop Playwright's sync API holds (pytest may start ``browser`` first).
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(ApiClient, stack.api, stack.settings).result()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _sign_in(page: Page, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")


def _unnamed_controls(page: Page) -> list[str]:
    """Visible form controls and buttons with no accessible name (a label, text or aria-label)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, button')]
            .filter((el) => el.offsetParent !== null)
            .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
            .map((el) => el.outerHTML)"""
    )


def test_sign_in_upload_and_follow_a_scan_to_its_result(stack: RunningStack, browser: Browser, user: ApiClient) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sockets: list[str] = []
    frames: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", on_socket)
    page.goto(f"{stack.api}/")

    # A wrong key is refused in words, and the dashboard stays shut.
    _sign_in(page, "untxt_" + "x" * 43)
    expect(page.locator("#sign-in-error")).to_contain_text("not accepted")
    expect(page.locator("#dashboard")).to_be_hidden()
    _shot(page, "wrong-key")

    _sign_in(page, user.key)
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    expect(page.locator("#connection")).to_have_text("Live updates on")
    assert page.evaluate("sessionStorage.getItem('untxt.apiKey')") == user.key
    assert _unnamed_controls(page) == []

    # Uploaded over a link slowed to 20 kB/s, so the file's own progress bar can be seen moving.
    network = context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", {**UNTHROTTLED, "uploadThroughput": 20_000})
    page.get_by_label(re.compile("pick them, or drop them here")).set_input_files(str(corpus_file("phototest.tif")))
    uploading = page.locator("#uploads li", has_text="phototest.tif")
    page.wait_for_function(
        "() => { const bar = document.querySelector('#uploads .upload-progress');"
        " return bar !== null && bar.value > 0 && bar.value < 100; }"
    )
    expect(uploading.locator(".upload-state")).to_have_text(re.compile(r"^\d+ %$"))
    _shot(page, "uploading")
    network.send("Network.emulateNetworkConditions", UNTHROTTLED)
    expect(uploading).to_have_count(0, timeout=10_000)  # accepted: the task list has it now
    row = page.locator("#tasks li", has_text="phototest.tif")
    expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(row.locator(".task-detail")).to_contain_text("1 page")
    task_id = row.get_attribute("data-task-id")
    _shot(page, "completed")

    # The row was fed by the socket: page progress, then the completion with its summary.
    updates = [f["data"] for f in frames if f.get("type") == "task_update" and f["data"]["taskId"] == task_id]
    assert any(u["status"] == "processing" and u["pages"] == 1 and u["page"] == 1 for u in updates), updates
    assert any(u["status"] == "completed" and u["result"]["pages"] == 1 for u in updates), updates

    # The socket authenticated with a ticket, not the key; the ticket works once only.
    assert sockets, "the page opened no WebSocket"
    assert "ticket=" in sockets[0]
    assert user.key not in sockets[0]
    assert "token=" not in sockets[0]
    reused = requests.get(sockets[0].replace("ws://", "http://"), timeout=10)
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "invalid_ticket"

    # The HTML result opens in a new tab cut off from the dashboard; the text result likewise.
    with page.expect_popup() as opened:
        row.get_by_role("button", name="Open the result of phototest.tif in a new tab").click()
    result = opened.value
    result.wait_for_url(re.compile(r"result\.html"))
    expect(result.locator("body")).to_contain_text("quick brown dog jumped over the")
    assert result.evaluate("window.opener") is None
    result.close()
    with page.expect_popup() as opened:
        row.get_by_role("button", name="Download TXT of phototest.tif").click()
    text = opened.value
    text.wait_for_url(re.compile(r"result\.txt"))
    expect(text.locator("body")).to_contain_text("lazy fox")
    text.close()

    # The filter and page live in the URL's fragment, and the key in the tab: both survive a reload.
    page.get_by_label("Show").select_option("failed")
    expect(page.locator("#tasks-empty")).to_be_visible()
    assert page.evaluate("location.hash") == "#status=failed"
    page.reload()
    expect(page.get_by_label("Show")).to_have_value("failed")
    expect(page.locator("#tasks-empty")).to_be_visible()
    page.get_by_label("Show").select_option("completed")
    expect(row).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('untxt.apiKey')") is None
    assert errors == []
    context.close()


def test_the_socket_comes_back_by_itself_and_the_list_catches_up(
    stack: RunningStack, browser: Browser, user: ApiClient
) -> None:
    # An API process of the page's own, stopped and started again under it; the stack's API
    # (same stores, same worker) changes the user's tasks while the page's one is down.
    port = free_port()
    env = service_env(stack.settings, API_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    api = start_service("backend", env, f"{base}/health")
    context = browser.new_context()
    page = context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        kept = user.upload("before.png", text_page_png(["Before the outage"]))["taskId"]
        user.wait(kept)
        page.goto(f"{base}/")
        _sign_in(page, user.key)
        expect(page.locator("#connection")).to_have_text("Live updates on")
        expect(page.locator(f'li[data-task-id="{kept}"]')).to_have_attribute("data-status", "completed")

        stop_service(api)
        expect(page.locator("#connection")).to_contain_text("retrying")
        gone = requests.delete(f"{stack.api}/api/tasks/{kept}", headers=user.headers, timeout=10)
        assert gone.status_code == 200
        added = user.upload("during.png", text_page_png(["During the outage"]))["taskId"]
        user.wait(added)
        api = start_service("backend", env, f"{base}/health")

        expect(page.locator("#connection")).to_have_text("Live updates on", timeout=20_000)
        expect(page.locator(f'li[data-task-id="{added}"]')).to_have_attribute("data-status", "completed")
        expect(page.locator(f'li[data-task-id="{kept}"]')).to_have_count(0)
        assert len(sockets) >= 2
        assert all("ticket=" in url for url in sockets)
        assert len(set(sockets)) == len(sockets)  # a fresh ticket for every connection
    finally:
        context.close()
        stop_service(api)


def test_failed_task_in_words_retry_delete_and_cancel(stack: RunningStack, browser: Browser, user: ApiClient) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the delete confirmation
    page.goto(f"{stack.api}/")
    _sign_in(page, user.key)
    picker = page.get_by_label(re.compile("pick them, or drop them here"))

    # A file that only looks like a PDF fails in the worker; the row says so in words.
    picker.set_input_files(str(corpus_file("invalid.pdf")))
    row = page.locator("#tasks li", has_text="invalid.pdf")
    expect(row).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(row.locator(".task-detail")).to_contain_text("The file could not be read")
    task_id = row.get_attribute("data-task-id")
    row.get_by_role("button", name="Retry invalid.pdf").click()
    deadline = time.monotonic() + 30
    while (task := user.task(task_id))["attempts"] < 2 or task["status"] != "failed":
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    expect(row).to_have_attribute("data-status", "failed")
    row.get_by_role("button", name="Delete invalid.pdf").click()
    expect(row).to_have_count(0)
    expect(page.get_by_role("heading", name="Tasks")).to_be_focused()
    assert user.get(f"/api/tasks/{task_id}").status_code == 404

    # A six-page scan is cancelled while it is being read.
    picker.set_input_files(str(corpus_file("multipage.pdf")))
    row = page.locator("#tasks li", has_text="multipage.pdf")
    expect(row).to_have_attribute("data-status", "processing", timeout=30_000)
    row.get_by_role("button", name="Cancel multipage.pdf").click()
    expect(row).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(row.get_by_role("button", name="Retry multipage.pdf")).to_be_visible()
    _shot(page, "failed-and-cancelled")
    context.close()


# Runs in the page: task rows built from REST answers and events, as the modules do it.
_ROW_CHECKS = """async () => {
  const view = await import("/static/js/taskview.js");
  const template = document.getElementById("task-row");
  const row = template.content.firstElementChild.cloneNode(true);
  const at = (s) => `2026-11-25T07:00:0${s}.000Z`;
  const hostile = '<img src=x onerror="window.pwned = 1">.png';
  const rest = { taskId: "t1", status: "queued", progress: 0, priority: 5, language: "eng",
                 file: { filename: hostile }, createdAt: at(0), updatedAt: at(0), queuePosition: 3 };
  const out = {};
  const task = view.fromRest(rest);
  view.renderTask(row, task);
  out.name = row.querySelector(".task-name").textContent;
  out.images = row.querySelectorAll("img").length;
  out.queued = row.querySelector(".task-detail").textContent;
  out.applied = view.applyEvent(task, { data: { taskId: "t1", status: "processing", progress: 40, page: 2,
                                                pages: 5 }, timestamp: at(5), seq: 3 });
  view.renderTask(row, task);
  const bar = row.querySelector(".task-progress");
  out.processing = [row.querySelector(".task-detail").textContent, bar.value, bar.max, bar.hidden];
  out.staleApplied = view.applyEvent(task, { data: { taskId: "t1", status: "queued", progress: 0 },
                                             timestamp: at(1), seq: 2 });
  out.afterOlderRest = view.mergeRest(task, view.fromRest(rest)).status;
  const done = view.mergeRest(task, view.fromRest({ ...rest, status: "completed", progress: 100, updatedAt: at(9),
    result: { pages: 5, words: 1234, meanConfidence: 90.4, formats: ["html", "txt", "json", "pdf", "hocr"] } }));
  view.renderTask(row, done);
  out.completed = row.querySelector(".task-detail").textContent;
  out.downloads = [...row.querySelectorAll("[data-action=download]")].map((b) => b.textContent);
  out.defaultDownloads = view.resultFormats({ result: { pages: 1 } });
  out.failed = view.errorWords({ code: "pdf_encrypted", message: "the PDF is encrypted" });
  out.pwned = window.pwned ?? null;
  return out;
}"""


def test_task_rows_show_untrusted_text_as_text_and_never_go_backwards(stack: RunningStack, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.api}/")
    out = page.evaluate(_ROW_CHECKS)
    context.close()
    assert out["name"] == '<img src=x onerror="window.pwned = 1">.png'
    assert out["images"] == 0
    assert out["pwned"] is None
    assert out["queued"] == "Waiting: number 3 in the queue."
    assert out["applied"] is True
    assert out["processing"] == ["2 of 5 pages read.", 2, 5, False]
    assert out["staleApplied"] is False
    assert out["afterOlderRest"] == "processing"
    assert out["completed"] == "Done: 5 pages, 1,234 words, 90 % confidence."
    assert out["downloads"] == ["TXT", "JSON", "PDF", "HOCR"]
    assert out["defaultDownloads"] == ["html", "txt", "json"]
    assert out["failed"] == "The PDF is password-protected; upload an unprotected copy. (the PDF is encrypted)"


def test_phone_width_keyboard_and_focus(stack: RunningStack, browser: Browser, user: ApiClient) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{stack.api}/")
    # The first Tab reaches the skip link, with a visible focus ring.
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.textContent, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused == ["Skip to content", "solid", "3px"]
    # A long name with no space to break at must wrap, not widen the page.
    long_name = "scan_" + "x" * 80 + ".png"
    user.upload(long_name, text_page_png(["Phone"]))
    _sign_in(page, user.key)
    expect(page.locator("#connection")).to_have_text("Live updates on")
    expect(page.locator("#tasks li", has_text=long_name)).to_be_visible()
    expect(page.get_by_label(re.compile("pick them, or drop them here"))).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "phone")
    context.close()
