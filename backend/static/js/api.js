// Talking to the untxt API: the Bearer header on every call, the JSON envelope unwrapped, and
// every failure turned into an ApiError carrying the server's code and sentence.
import { getKey } from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let unauthorizedHandler = () => {};

/** Called with the error whenever the API answers 401: the key is unknown or was revoked. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function settle(status, text, retryAfter) {
  const body = parseJson(text);
  if (status >= 200 && status < 300 && body && body.success === true) {
    return body.data;
  }
  const error = body && body.error && typeof body.error.code === "string"
    ? new ApiError(status, body.error.code, String(body.error.message ?? body.error.code), retryAfter)
    : new ApiError(status, "http_error", `The server answered with HTTP ${status}.`, retryAfter);
  if (status === 401) {
    unauthorizedHandler(error);
  }
  throw error;
}

/** method + path → the envelope's data, or throws ApiError. */
export async function request(method, path) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${getKey()}` },
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network_error", "The server could not be reached; check the connection.");
  }
  return settle(response.status, await response.text(), response.headers.get("Retry-After"));
}

/**
 * POST /api/tasks with one file. XMLHttpRequest rather than fetch: only it reports upload
 * progress. onProgress gets a fraction from 0 to 1. Returns { done: Promise<data>, abort }.
 */
export function uploadFile(file, fields, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", "/api/tasks");
    xhr.setRequestHeader("Authorization", `Bearer ${getKey()}`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) {
        onProgress(event.loaded / event.total);
      }
    });
    xhr.addEventListener("load", () => {
      try {
        resolve(settle(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      } catch (error) {
        reject(error);
      }
    });
    xhr.addEventListener("error", () => {
      reject(new ApiError(0, "network_error", "The upload failed: the server could not be reached."));
    });
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "Upload stopped.")));
    const form = new FormData();
    // Fields before the file: the server reads the parts in order while it streams the file.
    for (const [name, value] of Object.entries(fields)) {
      if (value) {
        form.append(name, value);
      }
    }
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}
