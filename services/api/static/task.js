// The live task page: one WebSocket for the task's snapshot and its progress frames, the HTTP
// API for the items, Retry and Cancel. Every view it shows carries a `seq`; an older one never
// replaces a newer one, so the page cannot go back to a stale state. No build step: plain
// modern JS modules; every word comes from the message catalogue (i18n.js).
import { bindLanguageSwitch, createI18n, readCatalogue } from "./i18n.js";
import { ItemList } from "./items.js";

const root = document.getElementById("task");
const taskId = root.dataset.taskId;
const params = new URLSearchParams(window.location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);
const i18n = createI18n(readCatalogue(), root.dataset.lang);

const RETRYABLE = new Set(["failed", "partial_failure", "cancelled"]);
const CANCELLABLE = new Set(["pending", "processing"]);
const ENDED = new Set(["completed", "failed", "partial_failure", "cancelled"]);
const FINAL = new Set([4401, 4403, 4404]); // close codes after which reconnecting cannot help
const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;
const BACKOFF_MAX_MS = 30000;
const ANNOUNCE_EVERY_MS = 5000;
const WAITING_STEP = "content_generation_waiting";

let task = null; // the task view as last shown, with `seq`
let socket = null;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
let lastFrameAt = 0;
let connection = { state: "connecting", key: "connecting", values: {} };
let announceTimer = null;
let activityTimer = null;

const items = new ItemList($("items"), i18n, async (cursor) => {
  const query = new URLSearchParams({ limit: "500" });
  if (cursor) query.set("cursor", cursor);
  const response = await api("GET", `/items?${query}`);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const page = await response.json();
  return { ...page, seq: Number(response.headers.get("X-Task-Seq") || "0") };
}, async (conceptId, contentType) => {
  const path = `/items/${encodeURIComponent(conceptId)}/${encodeURIComponent(contentType)}`;
  const response = await api("GET", path);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
});

// ---- applying what the server says ----------------------------------------------------------

function applyView(view) {
  if (task && view.seq < task.seq) return; // an older picture than the one on screen
  const before = task && task.status;
  task = structuredClone(view);
  if (before && before !== task.status) announce(true);
  render();
}

function applyProgress(frame) {
  items.apply(frame); // items keep their own `seq`: a view from the API may be newer than the frame
  if (!task || frame.seq <= task.seq) return; // already shown (the snapshot covered it)
  const before = task.status;
  const data = frame.data || {};
  const counts = task.items;
  task.seq = frame.seq;
  task.status = frame.status;
  task.current_step = frame.step;
  task.last_message = frame.message;
  if (frame.step === WAITING_STEP) task.waiting_since = data.waiting_since || new Date().toISOString();
  else if (frame.status !== "processing" || data.in_flight || data.item) task.waiting_since = null;
  else if (frame.step === "content_retry_queued") task.waiting_since = new Date().toISOString();
  if (Number.isInteger(data.completed_items) && Number.isInteger(data.total_items)) {
    counts.completed = data.completed_items;
    counts.failed = Number.isInteger(data.failed_items) ? data.failed_items : counts.failed;
    counts.total = data.total_items;
    counts.pending = Math.max(0, counts.total - counts.completed - counts.failed);
  } else if (frame.step === "content_retry_queued") {
    counts.pending += counts.failed; // the failed items are queued again
    counts.failed = 0;
  }
  if (frame.status !== before) {
    task.error_message = ENDED.has(frame.status) && frame.status !== "completed" ? frame.message : null;
    refresh(); // exact error text and counts from the API; applied only if not older
  }
  announce(frame.status !== before);
  render();
}

async function refresh() {
  try {
    const response = await api("GET", "");
    if (response.ok) applyView(await response.json());
  } catch (_) {
    // the socket will resync us; nothing to do
  }
}

async function loadItems() {
  const note = $("items-note");
  const show = (key) => {
    note.hidden = false;
    note.dataset.i18n = key; // a language switch re-translates it
    note.textContent = i18n.t(key);
  };
  show("items_loading");
  try {
    await items.load();
    note.hidden = true;
    render(); // the items in flight are known once the list is
  } catch (_) {
    show("items_load_failed");
  }
}

// ---- drawing --------------------------------------------------------------------------------

function render() {
  if (!task) return;
  root.dataset.seq = String(task.seq);
  const statusText = i18n.status(task.status);
  const status = $("status");
  status.textContent = statusText;
  status.dataset.status = task.status;
  $("step").textContent = i18n.step(task.current_step);
  $("message").textContent = task.last_message || i18n.t("no_value");

  const { completed = 0, failed = 0, pending = 0, total = 0 } = task.items || {};
  const share = (n) => (total ? (100 * n) / total : 0);
  const percent = Math.round(share(completed + failed));
  $("bar-completed").style.width = `${share(completed)}%`;
  $("bar-failed").style.width = `${share(failed)}%`;
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", i18n.t("progress_text", { percent, completed, failed, total }));
  $("percent").textContent = i18n.t("percent_done", { n: percent });
  i18n.fillNumber($("counted-completed"), "count_completed", "count-completed", completed);
  i18n.fillNumber($("counted-failed"), "count_failed", "count-failed", failed);
  i18n.fillNumber($("counted-total"), "count_total", "count-total", total);

  renderActivity();

  $("error-box").hidden = !task.error_message;
  $("error").textContent = task.error_message || "";

  const retry = $("retry");
  const redo = total - completed; // the retry redoes every item that is not completed
  retry.disabled = !RETRYABLE.has(task.status);
  if (retry.disabled) retry.textContent = i18n.t("retry");
  else if (redo === 0) retry.textContent = i18n.t("retry_finish"); // its job just finishes it
  else if (pending > 0) retry.textContent = i18n.t("retry_unfinished", { n: redo });
  else retry.textContent = i18n.t(redo === 1 ? "retry_failed_one" : "retry_failed", { n: redo });
  retry.dataset.count = String(retry.disabled ? 0 : redo);
  $("cancel").disabled = !CANCELLABLE.has(task.status);
  document.title = i18n.t("page_title", { status: statusText, task_id: taskId });
}

// While the task waits for a free worker: since when, ticking; while its items run: how many.
function renderActivity() {
  const el = $("activity");
  clearTimeout(activityTimer);
  const running = task && CANCELLABLE.has(task.status);
  if (running && task.waiting_since) {
    const since = Date.parse(task.waiting_since);
    const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
    const duration = seconds < 60
      ? i18n.t("duration_seconds", { s: seconds })
      : i18n.t("duration_minutes", { m: Math.floor(seconds / 60), s: seconds % 60 });
    el.dataset.state = "waiting";
    el.textContent = i18n.t("waiting_for_worker", { duration });
    activityTimer = setTimeout(renderActivity, 1000);
  } else if (running && items.generatingCount() > 0) {
    const n = items.generatingCount();
    el.dataset.state = "generating";
    el.textContent = i18n.t(n === 1 ? "generating_now_one" : "generating_now", { n });
  } else {
    el.dataset.state = "idle";
    el.textContent = "";
  }
  el.hidden = el.dataset.state === "idle";
}

function setConnection(state, key, values = {}) {
  connection = { state, key, values };
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = i18n.t(key, values);
}

function say(key, values = {}, isError = false) {
  const el = $("action-result");
  el.textContent = key ? i18n.t(key, values) : "";
  el.classList.toggle("bad", isError);
}

// Screen readers hear a status change at once, item progress at most every few seconds.
function announce(now) {
  const speak = () => {
    announceTimer = null;
    if (!task) return;
    const { completed = 0, failed = 0, total = 0 } = task.items;
    $("announcer").textContent = i18n.t(now ? "announce_status" : "announce_items",
      { status: i18n.status(task.status), completed, failed, total });
  };
  if (now) {
    clearTimeout(announceTimer);
    speak();
  } else if (!announceTimer) {
    announceTimer = setTimeout(speak, ANNOUNCE_EVERY_MS);
  }
}

bindLanguageSwitch(i18n, root, () => {
  setConnection(connection.state, connection.key, connection.values);
  say("");
  render();
  items.redrawAll();
});

// ---- the HTTP API ---------------------------------------------------------------------------

function api(method, path, idempotencyKey) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  return fetch(`/api/v1/tasks/${encodeURIComponent(taskId)}${path}`, { method, headers });
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

async function act(action, button) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  say(action === "retry" ? "retrying" : "cancelling");
  try {
    const response = await api("POST", `/${action}`, newKey());
    const body = await response.json().catch(() => ({}));
    if (response.ok && action === "retry") {
      applyView(body.task);
      if (body.total_items === 0) say("retry_finishing");
      else say("retry_started", { n: body.total_items });
    } else if (response.ok) {
      applyView(body);
      say("cancelled_done");
    } else if (body.detail) {
      $("action-result").textContent = body.detail; // the server's words, shown as given
      $("action-result").classList.add("bad");
    } else {
      say("request_failed", { n: response.status }, true);
    }
  } catch (_) {
    say("unreachable", {}, true);
  } finally {
    button.removeAttribute("aria-busy");
    render();
  }
}

$("retry").addEventListener("click", (event) => act("retry", event.currentTarget));
$("cancel").addEventListener("click", (event) => act("cancel", event.currentTarget));

// ---- the live socket ------------------------------------------------------------------------

function connect() {
  clearTimeout(reconnectTimer);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${window.location.host}/ws/tasks/${encodeURIComponent(taskId)}` +
    `?token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => startHeartbeat(ws);
  ws.onmessage = (event) => {
    lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (frame.type === "snapshot") {
      attempt = 0;
      applyView(frame.task);
      setConnection("live", "live");
      // The first snapshot loads the items; after a reconnect frames may have been missed.
      loadItems();
    } else if (frame.type === "progress") {
      applyProgress(frame);
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pingTimer);
    if (FINAL.has(event.code)) {
      setConnection("closed", `closed_${event.code}`);
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  // Full jitter: after a restart, clients come back spread out rather than all at once.
  const cap = Math.min(BACKOFF_MAX_MS, 500 * 2 ** attempt);
  const delay = 200 + Math.random() * cap;
  attempt += 1;
  setConnection("reconnecting", "reconnecting", { seconds: Math.ceil(delay / 1000) });
  reconnectTimer = setTimeout(connect, delay);
}

function startHeartbeat(ws) {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const sentAt = Date.now();
    ws.send('{"type":"ping"}');
    setTimeout(() => {
      if (socket === ws && lastFrameAt < sentAt) ws.close(4000, "no pong"); // a dead link
    }, PONG_WITHIN_MS);
  }, PING_EVERY_MS);
}

window.addEventListener("online", () => {
  if (!socket) connect();
});

render();
connect();
