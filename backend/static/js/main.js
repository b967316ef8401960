// The dashboard page: sign in and out, and wiring the upload area, the task list and the live
// connection together. The view (status filter, page) lives in the URL's fragment, so it
// survives a reload and the back button works; the API key lives in sessionStorage.
import { onUnauthorized, request } from "./api.js";
import { LiveSocket } from "./live.js";
import { clearKey, getKey, setKey } from "./session.js";
import { TaskList } from "./tasks.js";
import { Uploads } from "./uploads.js";

const $ = (id) => document.getElementById(id);
const STATUSES = new Set(["queued", "processing", "completed", "failed", "cancelled"]);

function announce(text) {
  // Cleared first, so the same sentence twice is read out twice.
  $("announcer").textContent = "";
  requestAnimationFrame(() => {
    $("announcer").textContent = text;
  });
}

function showError(error, link) {
  $("alert-text").replaceChildren(error.message);
  if (link) {
    const a = document.createElement("a");
    a.href = link;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = "open the result";
    $("alert-text").append(" ", a);
  }
  $("alert").hidden = false;
}

function hideError() {
  $("alert").hidden = true;
}

function viewFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const status = STATUSES.has(params.get("status")) ? params.get("status") : "";
  const page = Math.max(1, Number.parseInt(params.get("page") ?? "1", 10) || 1);
  return { status, page };
}

function hashOf(view) {
  const params = new URLSearchParams();
  if (view.status) params.set("status", view.status);
  if (view.page > 1) params.set("page", String(view.page));
  return params.toString();
}

function goTo(view) {
  const hash = hashOf(view);
  if (location.hash.slice(1) === hash) {
    tasks.setView(view); // no hashchange for the same fragment
  } else {
    location.hash = hash; // → hashchange → showView
  }
}

function showView() {
  const view = viewFromHash();
  $("status-filter").value = view.status;
  tasks.setView(view);
}

const tasks = new TaskList(
  {
    heading: $("tasks-title"),
    list: $("tasks"),
    empty: $("tasks-empty"),
    pager: $("pager"),
    pageInfo: $("page-info"),
    prev: $("page-prev"),
    next: $("page-next"),
    template: $("task-row"),
  },
  { announce, showError, onView: goTo },
);

const uploads = new Uploads($("uploads"), $("upload-row"), {
  fields: () => ({ priority: $("priority").value, language: $("language").value }),
  onAccepted: () => tasks.scheduleReload(),
  announce,
});

const CONNECTION_WORDS = {
  connecting: () => "Connecting…",
  live: () => "Live updates on",
  offline: (ms) => `Live updates lost; retrying in ${Math.ceil(ms / 1000)} s`,
};

const live = new LiveSocket({
  onMessage: (message) => {
    if (message.type === "task_update") {
      tasks.handleUpdate(message);
    }
  },
  // The snapshot that follows brings the tasks the list knows up to date; a reload brings in
  // the ones created, deleted or moved between pages while the socket was down.
  onConnected: (isReconnect) => {
    if (isReconnect) tasks.scheduleReload();
  },
  onState: (state, retryInMs) => {
    $("connection").dataset.state = state;
    $("connection").textContent = CONNECTION_WORDS[state](retryInMs);
  },
  onRevoked: () => signOut("Your API key was revoked. Sign in with another key."),
});

function showSignedIn(signedIn) {
  $("sign-in").hidden = signedIn;
  $("dashboard").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("connection").hidden = !signedIn;
}

function enter() {
  hideError();
  showSignedIn(true);
  showView();
  live.start();
}

function signOut(message = "") {
  live.stop();
  uploads.stopAll();
  tasks.clear();
  clearKey();
  showSignedIn(false);
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("sign-in-error").textContent = "";
  if (!key) {
    $("sign-in-error").textContent = "Enter your API key.";
    $("api-key").focus();
    return;
  }
  setKey(key);
  $("sign-in-button").disabled = true;
  try {
    await request("GET", "/api/queue/stats"); // the cheapest authenticated call
    $("api-key").value = "";
    enter();
    $("main").focus();
  } catch (error) {
    if (error.status !== 401) {
      clearKey();
      $("sign-in-error").textContent = error.message; // a 401 has signed out with its own words
    }
  } finally {
    $("sign-in-button").disabled = false;
  }
}

onUnauthorized(() => {
  if (getKey()) {
    signOut("That API key was not accepted: it is unknown or has been revoked.");
  }
});

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut());
$("alert-close").addEventListener("click", hideError);
$("refresh").addEventListener("click", () => tasks.load());
$("status-filter").addEventListener("change", (e) => goTo({ status: e.target.value, page: 1 }));
$("page-prev").addEventListener("click", () => goTo({ ...tasks.view, page: tasks.view.page - 1 }));
$("page-next").addEventListener("click", () => goTo({ ...tasks.view, page: tasks.view.page + 1 }));
window.addEventListener("hashchange", () => {
  if (getKey()) showView();
});

$("file-input").addEventListener("change", (event) => {
  uploads.add([...event.target.files]);
  event.target.value = ""; // the same file can be picked again
});
const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  zone.classList.add("dragging");
});
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  uploads.add([...(event.dataTransfer?.files ?? [])]);
});
// A file dropped beside the zone must not make the browser navigate away to it.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (event) => event.preventDefault());
}

if (getKey()) {
  enter();
} else {
  showSignedIn(false);
}
