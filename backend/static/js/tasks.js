// The task list: one page of the caller's tasks (status filter + paging), kept live by the
// WebSocket's task_update messages, with the actions on each task.
import { ApiError, request } from "./api.js";
import { applyEvent, fromRest, mergeRest, renderTask, statusWords } from "./taskview.js";

export const PAGE_SIZE = 20;
// Bursts of events (a batch upload, a snapshot) cost one reload, not one each.
const RELOAD_DELAY_MS = 300;
const POSITIONS_DELAY_MS = 500;

function taskPath(taskId, suffix = "") {
  return `/api/tasks/${encodeURIComponent(taskId)}${suffix}`;
}

export class TaskList {
  /**
   * elements: { heading, list, empty, pager, pageInfo, prev, next, template }; announce(text) reads a status
   * change out; showError(error, link?) shows a failed action; onView(view) is told when the
   * list moves to another page by itself (the page it was on became empty).
   */
  constructor(elements, { announce, showError, onView }) {
    this.el = elements;
    this.announce = announce;
    this.showError = showError;
    this.onView = onView;
    this.view = { status: "", page: 1 };
    this.total = 0;
    this.tasks = new Map(); // taskId → model, the rows on this page
    this.rows = new Map(); // taskId → <li>
    this.statusOf = new Map(); // taskId → last status heard, for any task of the user
    this.loadSeq = 0;
    this.reloadTimer = null;
    this.positionsTimer = null;
    elements.list.addEventListener("click", (event) => this.onClick(event));
  }

  clear() {
    clearTimeout(this.reloadTimer);
    clearTimeout(this.positionsTimer);
    this.loadSeq += 1; // answers of loads in flight are dropped
    this.tasks.clear();
    this.rows.clear();
    this.statusOf.clear();
    this.el.list.replaceChildren();
    this.total = 0;
  }

  setView(view) {
    this.view = view;
    return this.load();
  }

  async load() {
    const { status, page } = this.view;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String((page - 1) * PAGE_SIZE) });
    if (status) {
      params.set("status", status);
    }
    const seq = ++this.loadSeq;
    let data;
    try {
      data = await request("GET", `/api/tasks?${params}`);
    } catch (error) {
      if (error.status !== 401) {
        this.showError(error);
      }
      return;
    }
    if (seq !== this.loadSeq) {
      return; // a newer load has started since
    }
    const lastPage = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    if (page > lastPage) {
      this.onView({ status, page: lastPage });
      return;
    }
    this.total = data.total;
    const fresh = new Map();
    for (const item of data.tasks) {
      const task = mergeRest(this.tasks.get(item.taskId), fromRest(item));
      fresh.set(task.taskId, task);
      this.statusOf.set(task.taskId, task.status);
    }
    this.tasks = fresh;
    this.renderAll();
    this.refreshPositions();
  }

  scheduleReload() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), RELOAD_DELAY_MS);
  }

  renderAll() {
    const rows = new Map();
    const items = [];
    for (const task of this.tasks.values()) {
      const row = this.rows.get(task.taskId) ?? this.el.template.content.firstElementChild.cloneNode(true);
      renderTask(row, task);
      rows.set(task.taskId, row);
      items.push(row);
    }
    // Rows are reused, so a button that has the focus keeps it across a reload.
    this.el.list.replaceChildren(...items);
    this.rows = rows;
    this.el.empty.hidden = items.length > 0;
    const { page } = this.view;
    const first = this.total ? (page - 1) * PAGE_SIZE + 1 : 0;
    const last = Math.min(this.total, page * PAGE_SIZE);
    this.el.pageInfo.textContent = this.total ? `${first}–${last} of ${this.total}` : "";
    this.el.prev.disabled = page <= 1;
    this.el.next.disabled = last >= this.total;
    this.el.pager.hidden = page === 1 && this.total <= PAGE_SIZE;
  }

  /** A WebSocket task_update (live, or part of the snapshot sent on connect). */
  handleUpdate(message) {
    const data = message.data ?? {};
    const previous = this.statusOf.get(data.taskId);
    const task = this.tasks.get(data.taskId);
    if (task) {
      if (!applyEvent(task, message)) {
        return;
      }
      this.statusOf.set(task.taskId, task.status);
      renderTask(this.rows.get(task.taskId), task);
      if (previous !== task.status) {
        this.announce(`${task.filename || "A task"}: ${statusWords(task.status).toLowerCase()}.`);
        if (this.view.status && this.view.status !== task.status) {
          this.scheduleReload(); // it no longer belongs in this filtered view
        }
      }
    } else {
      this.statusOf.set(data.taskId, data.status);
      // Not on this page: a new task, or one that now matches the filter, may belong here.
      if (previous !== data.status && (!this.view.status || this.view.status === data.status)) {
        this.scheduleReload();
      }
    }
    if (previous === "queued" && data.status !== "queued") {
      this.schedulePositions(); // everyone behind it moved up
    }
  }

  schedulePositions() {
    clearTimeout(this.positionsTimer);
    this.positionsTimer = setTimeout(() => this.refreshPositions(), POSITIONS_DELAY_MS);
  }

  /** Queue positions of the queued tasks on this page (list answers carry none; events neither). */
  async refreshPositions() {
    const queued = [...this.tasks.values()].filter((t) => t.status === "queued");
    await Promise.all(
      queued.map(async (task) => {
        try {
          const status = await request("GET", taskPath(task.taskId, "/status"));
          if (task.status === "queued" && this.tasks.get(task.taskId) === task) {
            task.queuePosition = status.queuePosition ?? null;
            renderTask(this.rows.get(task.taskId), task);
          }
        } catch {
          // The row keeps saying "waiting"; the next event or reload tries again.
        }
      }),
    );
  }

  async onClick(event) {
    const button = event.target.closest("button[data-action]");
    const row = button?.closest("li[data-task-id]");
    const task = row && this.tasks.get(row.dataset.taskId);
    if (!task) {
      return;
    }
    button.disabled = true;
    try {
      await this.act(button.dataset.action, task, button.dataset.format);
    } catch (error) {
      if (error.status !== 401) {
        this.showError(error, error.link);
      }
    } finally {
      button.disabled = false;
    }
  }

  async act(action, task, format) {
    switch (action) {
      case "open":
        return openResult(task.taskId, "html");
      case "download":
        return openResult(task.taskId, format);
      case "retry":
      case "cancel": {
        const answer = await request("POST", taskPath(task.taskId, `/${action}`));
        this.applyAnswer(answer);
        return undefined;
      }
      case "delete": {
        if (!window.confirm(`Delete “${task.filename}” and its results? This cannot be undone.`)) {
          return undefined;
        }
        await request("DELETE", taskPath(task.taskId));
        this.tasks.delete(task.taskId);
        this.renderAll();
        this.el.heading.focus(); // its button is gone with its row: keep the keyboard user in the list
        this.announce(`${task.filename || "The task"} was deleted.`);
        return this.load();
      }
      default:
        return undefined;
    }
  }

  applyAnswer(answer) {
    const known = this.tasks.get(answer.taskId);
    if (!known) {
      return;
    }
    const merged = mergeRest(known, fromRest(answer));
    this.tasks.set(merged.taskId, merged);
    renderTask(this.rows.get(merged.taskId), merged);
  }
}

/**
 * Opens a result (any stored format) in a new tab through its presigned URL. The tab is opened
 * before the URL is asked for, while the click still counts as the user's, so pop-up blockers
 * let it through; it is cut from this page (opener = null) before it is sent anywhere.
 */
export async function openResult(taskId, format) {
  const tab = window.open("", "_blank");
  if (tab) {
    tab.opener = null;
  }
  try {
    const data = await request("GET", taskPath(taskId, `/result?format=${encodeURIComponent(format)}`));
    const url = new URL(data.resultUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new ApiError(0, "bad_result_url", "The server gave an unusable result address.");
    }
    if (!tab) {
      const error = new ApiError(0, "popup_blocked", "The browser blocked the new tab. Open the result here:");
      error.link = url.href;
      throw error;
    }
    tab.location.replace(url.href);
  } catch (error) {
    tab?.close();
    throw error;
  }
}
