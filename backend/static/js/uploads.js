// Uploads: each picked or dropped file gets a row with its own progress bar; a few go at once.
// Once the API has accepted a file its row goes away: the task appears in the task list.
import { uploadFile } from "./api.js";

// Parallel uploads: enough to overlap round trips, few enough not to starve each other.
const PARALLEL = 3;

export class Uploads {
  /** list: the <ul>; template: #upload-row; fields(): the form's priority and language. */
  constructor(list, template, { fields, onAccepted, announce }) {
    this.list = list;
    this.template = template;
    this.fields = fields;
    this.onAccepted = onAccepted;
    this.announce = announce;
    this.waiting = [];
    this.running = new Set();
  }

  add(files) {
    for (const file of files) {
      const row = this.template.content.firstElementChild.cloneNode(true);
      row.querySelector(".upload-name").textContent = file.name;
      row.querySelector(".upload-progress").setAttribute("aria-label", `Upload progress of ${file.name}`);
      row.querySelector(".upload-state").textContent = "Waiting";
      const job = { file, row, fields: this.fields(), abort: null };
      const stop = row.querySelector(".upload-cancel");
      stop.setAttribute("aria-label", `Stop uploading ${file.name}`);
      stop.addEventListener("click", () => this.stop(job));
      this.list.append(row);
      this.waiting.push(job);
    }
    this.pump();
  }

  stop(job) {
    if (job.abort) {
      job.abort();
    } else {
      this.waiting = this.waiting.filter((j) => j !== job);
      job.row.remove();
    }
  }

  stopAll() {
    for (const job of [...this.waiting, ...this.running]) {
      this.stop(job);
    }
    this.list.replaceChildren();
  }

  pump() {
    while (this.running.size < PARALLEL && this.waiting.length) {
      this.start(this.waiting.shift());
    }
  }

  async start(job) {
    this.running.add(job);
    const bar = job.row.querySelector(".upload-progress");
    const state = job.row.querySelector(".upload-state");
    state.textContent = "Uploading";
    const { done, abort } = uploadFile(job.file, job.fields, (fraction) => {
      bar.value = Math.round(fraction * 100);
      state.textContent = fraction < 1 ? `${bar.value} %` : "Checking";
    });
    job.abort = abort;
    try {
      const data = await done;
      job.row.remove();
      this.announce(`${job.file.name} uploaded and queued.`);
      this.onAccepted(data);
    } catch (error) {
      if (error.code === "aborted") {
        job.row.remove();
      } else {
        this.fail(job, error);
      }
    } finally {
      this.running.delete(job);
      this.pump();
    }
  }

  fail(job, error) {
    const state = job.row.querySelector(".upload-state");
    job.row.classList.add("failed");
    job.row.querySelector(".upload-progress").hidden = true;
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    state.textContent = `Not uploaded: ${error.message}${wait}`;
    const dismiss = job.row.querySelector(".upload-cancel");
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", `Dismiss ${job.file.name}`);
    job.abort = null; // the button now only removes the row
    this.announce(`${job.file.name} was not uploaded: ${error.message}`);
  }
}
