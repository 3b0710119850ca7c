// The live task page: one WebSocket for the task's snapshot and its progress frames, the HTTP
// API for Retry and Cancel. Every view it shows carries a `seq`; an older one never replaces a
// newer one, so the page cannot go back to a stale state. No build step: plain modern JS.
"use strict";

(() => {
  const root = document.getElementById("task");
  if (!root) return;
  const taskId = root.dataset.taskId;
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);

  const RETRYABLE = new Set(["failed", "partial_failure", "cancelled"]);
  const CANCELLABLE = new Set(["pending", "processing"]);
  const ENDED = new Set(["completed", "failed", "partial_failure", "cancelled"]);
  // Close codes after which reconnecting cannot help.
  const FINAL = {
    4401: "Your token is missing, invalid or expired: open this page again with a fresh token.",
    4403: "This page's address is not allowed to open live updates.",
    4404: "This task does not exist, or it is not yours.",
  };
  const PING_EVERY_MS = 15000;
  const PONG_WITHIN_MS = 10000;
  const BACKOFF_MAX_MS = 30000;

  let task = null; // the task view as last shown, with `seq`
  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;

  // ---- applying what the server says --------------------------------------------------------

  function applyView(view, message) {
    if (task && view.seq < task.seq) return; // an older picture than the one on screen
    task = structuredClone(view);
    if (message !== undefined) task.message = message;
    render();
  }

  function applyProgress(frame) {
    if (!task || frame.seq <= task.seq) return; // already shown (the snapshot covered it)
    const before = task.status;
    const data = frame.data || {};
    const items = task.items;
    task.seq = frame.seq;
    task.status = frame.status;
    task.current_step = frame.step;
    task.message = frame.message;
    if (Number.isInteger(data.completed_items) && Number.isInteger(data.total_items)) {
      items.completed = data.completed_items;
      items.failed = Number.isInteger(data.failed_items) ? data.failed_items : items.failed;
      items.total = data.total_items;
      items.pending = Math.max(0, items.total - items.completed - items.failed);
    } else if (frame.step === "content_retry_queued") {
      items.pending += items.failed; // the failed items are queued again
      items.failed = 0;
    }
    if (frame.status !== before) {
      task.error_message = ENDED.has(frame.status) && frame.status !== "completed" ? frame.message : null;
      refresh(); // exact error text and counts from the API; applied only if not older
    }
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

  // ---- drawing ------------------------------------------------------------------------------

  function render() {
    if (!task) return;
    root.dataset.seq = String(task.seq);
    const status = $("status");
    status.textContent = task.status.replaceAll("_", " ");
    status.dataset.status = task.status;
    $("step").textContent = (task.current_step || "—").replaceAll("_", " ");
    if (task.message) $("message").textContent = task.message;

    const { completed = 0, failed = 0, total = 0 } = task.items || {};
    const share = (n) => (total ? (100 * n) / total : 0);
    const percent = Math.round(share(completed + failed));
    $("bar-completed").style.width = `${share(completed)}%`;
    $("bar-failed").style.width = `${share(failed)}%`;
    const bar = $("progress");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuetext", `${percent}% done: ${completed} completed, ${failed} failed, ${total} in all`);
    $("percent").textContent = `${percent}% done`;
    $("count-completed").textContent = String(completed);
    $("count-failed").textContent = String(failed);
    $("count-total").textContent = String(total);

    const box = $("error-box");
    box.hidden = !task.error_message;
    $("error").textContent = task.error_message || "";

    $("retry").disabled = !RETRYABLE.has(task.status);
    $("cancel").disabled = !CANCELLABLE.has(task.status);
    document.title = `${task.status.replaceAll("_", " ")} · Task ${taskId} · taskrelay`;
  }

  function setConnection(state, text) {
    const el = $("connection");
    el.dataset.state = state;
    el.textContent = text;
  }

  function say(text, isError = false) {
    const el = $("action-result");
    el.textContent = text;
    el.classList.toggle("bad", isError);
  }

  // ---- the HTTP API -------------------------------------------------------------------------

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
    say(action === "retry" ? "Retrying…" : "Cancelling…");
    try {
      const response = await api("POST", `/${action}`, newKey());
      const body = await response.json().catch(() => ({}));
      if (response.ok && action === "retry") {
        applyView(body.task, `Retrying ${body.total_items} failed content items`);
        say(`Retry started for ${body.total_items} items.`);
      } else if (response.ok) {
        applyView(body);
        say("Task cancelled.");
      } else {
        say(body.detail || `The request failed (HTTP ${response.status}).`, true);
      }
    } catch (_) {
      say("The server could not be reached; try again.", true);
    } finally {
      button.removeAttribute("aria-busy");
      render();
    }
  }

  $("retry").addEventListener("click", (event) => act("retry", event.currentTarget));
  $("cancel").addEventListener("click", (event) => act("cancel", event.currentTarget));

  // ---- the live socket ----------------------------------------------------------------------

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
        setConnection("live", "Live: updates appear as they happen.");
      } else if (frame.type === "progress") {
        applyProgress(frame);
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      clearInterval(pingTimer);
      if (FINAL[event.code]) {
        setConnection("closed", FINAL[event.code]);
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
    setConnection("reconnecting", `Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
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
})();
