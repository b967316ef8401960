// One task: its model (from the REST API or a WebSocket event) and its row in the list.
// Filenames, messages and results come from users and documents: they only ever reach the
// page as textContent or attribute values, never as HTML.

const STATUS_WORDS = {
  queued: "Queued",
  processing: "Processing",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

// The error codes of failed tasks (docs/api.md), in words a person can act on.
const ERROR_WORDS = {
  corrupt_file: "The file could not be read: it may be damaged, or not really an image or a PDF.",
  image_too_large: "The image has too many pixels to be read safely.",
  too_many_pages: "The document has more pages than the service accepts.",
  pdf_encrypted: "The PDF is password-protected; upload an unprotected copy.",
  empty_document: "The document has no pages.",
  unsupported_media_type: "This kind of file is not supported; upload an image or a PDF.",
  unsupported_language: "The requested language is not installed on the server.",
  timeout: "Reading the document took too long and was stopped.",
  worker_crashed: "The file crashed the OCR worker more than once, so it was set aside.",
  processing_error: "Something unexpected went wrong while reading the file.",
};

const DEFAULT_FORMATS = ["html", "txt", "json"];

/** A task from GET /api/tasks (or a task-shaped answer of cancel/retry). */
export function fromRest(task) {
  return {
    taskId: task.taskId,
    filename: task.file?.filename ?? "",
    status: task.status,
    progress: task.progress ?? 0,
    page: null,
    pages: null,
    queuePosition: task.queuePosition ?? null,
    priority: task.priority ?? null,
    language: task.language ?? null,
    error: task.error ?? null,
    result: task.result ?? null,
    cancelRequested: Boolean(task.cancelRequested),
    createdAt: task.createdAt ?? null,
    updatedAt: task.updatedAt ?? null,
    seq: 0,
  };
}

function time(iso) {
  const value = Date.parse(iso ?? "");
  return Number.isNaN(value) ? 0 : value;
}

/**
 * A fresh REST read merged into what the page already knows. The read may have started before
 * a WebSocket event that the page has applied since; the newer of the two states wins, so a
 * task never appears to go backwards.
 */
export function mergeRest(known, fresh) {
  if (!known || time(fresh.updatedAt) >= time(known.updatedAt)) {
    return { ...fresh, page: known?.page ?? null, pages: known?.pages ?? null, seq: known?.seq ?? 0 };
  }
  return { ...known, filename: fresh.filename, createdAt: fresh.createdAt, priority: fresh.priority };
}

/** Applies a task_update message; false if it is not newer than what the task has. */
export function applyEvent(task, message) {
  const data = message.data;
  if (typeof message.seq === "number" && message.seq <= task.seq) {
    return false;
  }
  const wasStatus = task.status;
  task.seq = message.seq ?? task.seq;
  task.status = data.status;
  task.progress = data.progress ?? task.progress;
  task.updatedAt = message.timestamp ?? task.updatedAt;
  if (data.pages) {
    task.page = data.page ?? 0;
    task.pages = data.pages;
  }
  if (data.status !== "queued") {
    task.queuePosition = null;
  }
  if (data.status !== wasStatus) {
    task.cancelRequested = false;
    if (data.status === "queued") {
      task.error = null; // retried
      task.result = null;
    }
  }
  if (data.errorCode) {
    task.error = { code: data.errorCode, message: data.message ?? "" };
  }
  if (data.result) {
    task.result = data.result;
  }
  return true;
}

/** The formats stored for a completed task: result.formats when the server lists them. */
export function resultFormats(task) {
  const listed = task.result?.formats;
  const formats = Array.isArray(listed) && listed.length ? listed : DEFAULT_FORMATS;
  return formats.filter((f) => typeof f === "string" && /^[a-z0-9]{1,16}$/.test(f));
}

export function statusWords(status) {
  return STATUS_WORDS[status] ?? status;
}

export function errorWords(error) {
  if (!error) {
    return "The task failed.";
  }
  const words = ERROR_WORDS[error.code] ?? "The task failed.";
  const detail = (error.message ?? "").trim();
  return detail && detail !== error.code ? `${words} (${detail})` : `${words} (${error.code})`;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

function detailText(task) {
  switch (task.status) {
    case "queued":
      return task.queuePosition ? `Waiting: number ${task.queuePosition} in the queue.` : "Waiting in the queue.";
    case "processing":
      if (task.cancelRequested) {
        return "Cancelling: it stops after the page it is reading.";
      }
      if (task.pages) {
        return `${task.page} of ${plural(task.pages, "page")} read.`;
      }
      return task.progress ? `Reading: ${task.progress} % done.` : "Reading has started.";
    case "completed": {
      const r = task.result ?? {};
      const parts = [];
      if (typeof r.pages === "number") parts.push(plural(r.pages, "page"));
      if (typeof r.words === "number") parts.push(plural(r.words, "word"));
      if (typeof r.meanConfidence === "number") parts.push(`${Math.round(r.meanConfidence)} % confidence`);
      return parts.length ? `Done: ${parts.join(", ")}.` : "Done.";
    }
    case "failed":
      return errorWords(task.error);
    case "cancelled":
      return "Cancelled.";
    default:
      return "";
  }
}

function metaText(task) {
  const parts = [];
  const created = Date.parse(task.createdAt ?? "");
  if (!Number.isNaN(created)) parts.push(`Uploaded ${new Date(created).toLocaleString()}`);
  if (task.priority) parts.push(`priority ${task.priority}`);
  if (task.language) parts.push(task.language);
  return parts.join(" · ");
}

function renderDownloads(holder, task, name) {
  const formats = resultFormats(task).filter((f) => f !== "html");
  const wanted = formats.join(",");
  if (holder.dataset.formats === wanted) {
    return;
  }
  holder.dataset.formats = wanted;
  holder.replaceChildren();
  for (const format of formats) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button-secondary";
    button.dataset.action = "download";
    button.dataset.format = format;
    button.textContent = format.toUpperCase();
    button.setAttribute("aria-label", `Download ${format.toUpperCase()} of ${name}`);
    holder.append(button);
  }
}

/** Fills a row (a clone of the #task-row template) from the task. */
export function renderTask(row, task) {
  const q = (selector) => row.querySelector(selector);
  const name = task.filename || "(unnamed file)";
  row.dataset.taskId = task.taskId;
  row.dataset.status = task.status;
  q(".task-name").textContent = name;
  q(".task-status").textContent = statusWords(task.status);
  q(".task-detail").textContent = detailText(task);
  q(".task-meta").textContent = metaText(task);

  const bar = q(".task-progress");
  bar.hidden = task.status !== "processing";
  if (task.pages) {
    bar.max = task.pages;
    bar.value = task.page;
  } else {
    bar.max = 100;
    bar.value = task.progress;
  }
  bar.setAttribute("aria-label", `Progress of ${name}`);

  const done = task.status === "completed";
  q(".task-open").hidden = !done;
  q(".task-open").setAttribute("aria-label", `Open the result of ${name} in a new tab`);
  const downloads = q(".task-downloads");
  downloads.hidden = !done;
  if (done) {
    renderDownloads(downloads, task, name);
  }
  const retry = q(".task-retry");
  retry.hidden = task.status !== "failed" && task.status !== "cancelled";
  retry.setAttribute("aria-label", `Retry ${name}`);
  const cancel = q(".task-cancel");
  cancel.hidden = !(task.status === "queued" || (task.status === "processing" && !task.cancelRequested));
  cancel.setAttribute("aria-label", `Cancel ${name}`);
  const remove = q(".task-delete");
  remove.hidden = task.status === "processing";
  remove.setAttribute("aria-label", `Delete ${name}`);
}
