// The live connection: a WebSocket opened with a single-use ticket (the API key never goes in
// its URL), reconnected by itself with exponential backoff and jitter. The server sends a
// snapshot of the user's tasks on every connect, so a reconnect catches up by itself.
import { request } from "./api.js";

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// A socket can die without a close (a laptop that slept, a dropped NAT mapping); the server
// answers our ping, so hearing nothing for this long means the connection is gone.
const PING_EVERY_MS = 20000;
const SILENT_LIMIT_MS = 45000;
const REVOKED_CLOSE = 4401;

export class LiveSocket {
  /**
   * onMessage(msg) for every server message but "connected"; onConnected(isReconnect) once the
   * server has accepted the socket; onState(state, retryInMs) with "connecting" | "live" |
   * "offline"; onRevoked() when the server closes the socket because the key was revoked.
   */
  constructor({ onMessage, onConnected, onState, onRevoked }) {
    this.onMessage = onMessage;
    this.onConnected = onConnected;
    this.onState = onState;
    this.onRevoked = onRevoked;
    this.ws = null;
    this.stopped = true;
    this.generation = 0; // bumped by start and stop: a connect begun before then gives up
    this.attempts = 0;
    this.everConnected = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
  }

  start() {
    this.generation += 1;
    this.stopped = false;
    this.attempts = 0;
    this.everConnected = false;
    this.connect();
  }

  stop() {
    this.generation += 1;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.drop();
  }

  async connect() {
    const generation = this.generation;
    this.onState("connecting");
    let ticket;
    try {
      ({ ticket } = await request("POST", "/api/ws-ticket"));
    } catch (error) {
      if (error.status !== 401 && generation === this.generation) {
        this.retry();
      }
      return; // a 401 signs the page out (api.onUnauthorized)
    }
    if (generation !== this.generation) {
      return; // signed out (and perhaps in again) meanwhile
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) {
        return; // one we dropped ourselves
      }
      this.drop();
      if (this.stopped) {
        return;
      }
      if (event.code === REVOKED_CLOSE) {
        this.onRevoked();
      } else {
        this.retry();
      }
    });
  }

  receive(text) {
    this.lastHeard = Date.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "connected") {
      this.attempts = 0;
      this.onState("live");
      this.onConnected(this.everConnected);
      this.everConnected = true;
      this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
    } else {
      this.onMessage(message);
    }
  }

  keepAlive() {
    if (Date.now() - this.lastHeard > SILENT_LIMIT_MS) {
      this.drop();
      this.retry();
    } else if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "ping" }));
    }
  }

  drop() {
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      ws.close(1000);
    }
  }

  retry() {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempts);
    this.attempts += 1;
    // Jitter: clients cut off together (a server restart) do not all return in the same instant.
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.onState("offline", delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
