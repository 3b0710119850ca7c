// The list of a task's items: loaded once through the items API, then kept live from the
// `data.item` of progress frames, never refetched (except after a reconnect, when frames may
// have been missed). Items are grouped by status, failed first with their errors, in the
// task's concept order within each group; completed items start collapsed. A group draws at
// most `shown` rows (100 more per click), and drawing waits for the next animation frame, so
// 3,000 items and a frame every few milliseconds cost one small redraw per screen refresh.
// A completed item opens (a <details>) to show its content, fetched through the item API only
// when first opened and written as text (textContent), never as HTML: it is a model's output.

const GROUPS = ["failed", "pending", "completed"];
const PAGE = 100;
const RETRY_STEP = "content_retry_queued";
const WAITING_STEP = "content_generation_waiting";

const keyOf = (conceptId, type) => `${conceptId}\u0000${type}`;

export class ItemList {
  constructor(section, i18n, fetchPage, fetchItem) {
    this.section = section;
    this.i18n = i18n;
    this.fetchPage = fetchPage; // (cursor) => Promise<{items, next, seq}>
    this.fetchItem = fetchItem; // (conceptId, contentType) => Promise<item with content, usage>
    this.byKey = new Map();
    this.groups = { failed: [], pending: [], completed: [] };
    this.shown = { failed: PAGE, pending: PAGE, completed: PAGE };
    this.dirty = new Set();
    this.loaded = false;
    this.buffered = [];
    this.drawRequested = false;
    this.generation = 0;
    this.els = {};
    for (const name of GROUPS) {
      const details = section.querySelector(`[data-group="${name}"]`);
      const more = details.querySelector(".more");
      this.els[name] = { details, rows: details.querySelector(".rows"), more,
        count: details.querySelector("[data-count]") };
      more.addEventListener("click", () => {
        this.shown[name] += PAGE;
        this.mark(name);
      });
      details.addEventListener("toggle", () => this.mark(name));
    }
  }

  counts() {
    const n = (name) => this.groups[name].length;
    return { completed: n("completed"), failed: n("failed"), pending: n("pending"), total: this.byKey.size };
  }

  // Read every page; an item remembers the task `seq` its page was read at, so a frame applies
  // to it only if it is newer (frames that arrive while loading are applied afterwards).
  async load() {
    const generation = ++this.generation;
    this.loaded = false;
    this.section.setAttribute("aria-busy", "true");
    const byKey = new Map();
    let cursor = null;
    let position = 0;
    do {
      const page = await this.fetchPage(cursor);
      if (generation !== this.generation) return; // a newer load took over
      for (const item of page.items) {
        byKey.set(keyOf(item.concept_id, item.content_type),
          { ...item, position: position++, seenSeq: page.seq });
      }
      cursor = page.next;
    } while (cursor);
    this.byKey = byKey;
    this.groups = { failed: [], pending: [], completed: [] };
    for (const item of byKey.values()) (this.groups[item.status] || this.groups.pending).push(item);
    this.loaded = true;
    const frames = this.buffered;
    this.buffered = [];
    for (const frame of frames) this.apply(frame);
    this.section.removeAttribute("aria-busy");
    GROUPS.forEach((name) => this.mark(name));
  }

  // A progress frame: an item result moves that item; a retry moves failed items to pending;
  // items a job started (`data.in_flight`, `data.started`) show as generating until their
  // result, or until the task stops running (its job handed it back, or it ended).
  apply(frame) {
    if (!this.loaded) {
      this.buffered.push(frame);
      return;
    }
    const data = frame.data || {};
    if (frame.status !== "processing" || frame.step === WAITING_STEP) this.stopGenerating(frame.seq);
    for (const started of [...(data.in_flight || []), ...(data.started || [])]) {
      const item = this.byKey.get(keyOf(started.concept_id, started.content_type));
      if (item && item.status === "pending" && frame.seq > item.seenSeq) {
        item.generating = true;
        this.mark("pending");
      }
    }
    const change = data.item;
    if (change) {
      const item = this.byKey.get(keyOf(change.concept_id, change.content_type));
      if (!item || frame.seq <= item.seenSeq) return;
      item.seenSeq = frame.seq;
      item.attempts += 1;
      item.error = change.error;
      item.generating = false;
      this.move(item, change.status);
    } else if (frame.step === RETRY_STEP) {
      for (const item of [...this.groups.failed]) {
        if (frame.seq <= item.seenSeq) continue;
        item.seenSeq = frame.seq;
        this.move(item, "pending");
      }
    }
  }

  // No item is generated any more, as of the frame `seq`.
  stopGenerating(seq) {
    for (const item of this.groups.pending) {
      if (item.generating && seq > item.seenSeq) {
        item.generating = false;
        this.mark("pending");
      }
    }
  }

  generatingCount() {
    return this.groups.pending.filter((item) => item.generating).length;
  }

  move(item, status) {
    if (!this.groups[status] || item.status === status) {
      this.mark(item.status);
      return;
    }
    const from = this.groups[item.status];
    from.splice(indexFor(from, item.position), 1);
    const to = this.groups[status];
    to.splice(indexFor(to, item.position), 0, item);
    this.mark(item.status);
    this.mark(status);
    item.status = status;
  }

  mark(name) {
    this.dirty.add(name);
    if (this.drawRequested) return;
    this.drawRequested = true;
    requestAnimationFrame(() => this.draw());
  }

  // Redraw the groups that changed: their counts always, their rows only while open.
  draw() {
    this.drawRequested = false;
    if (!this.loaded) return;
    for (const name of this.dirty) {
      const { details, rows, more, count } = this.els[name];
      const items = this.groups[name];
      count.textContent = String(items.length);
      details.hidden = items.length === 0; // an empty group says nothing
      if (!details.open) {
        rows.replaceChildren();
        more.hidden = true;
        continue;
      }
      const visible = items.slice(0, this.shown[name]);
      if (items.length) this.reconcile(rows, visible);
      else rows.replaceChildren(this.empty());
      const rest = items.length - visible.length;
      more.hidden = rest <= 0;
      more.textContent = this.i18n.t("show_more", { n: Math.min(PAGE, rest) });
    }
    this.dirty.clear();
  }

  // Make `rows` show `visible` with as few DOM changes as possible: a row is rebuilt only when
  // its item changed, and a frame usually removes one row and adds one.
  reconcile(rows, visible) {
    const keep = new Set();
    for (const item of visible) {
      if (!item.row || item.rowVersion !== this.version(item)) {
        item.row = this.row(item);
        item.rowVersion = this.version(item);
      }
      keep.add(item.row);
    }
    for (const child of [...rows.children]) if (!keep.has(child)) child.remove();
    let cursor = rows.firstChild;
    let concept = null;
    for (const item of visible) {
      // A concept's items sit together (position order): its title shows once, on the first.
      item.row.classList.toggle("continued", item.concept_id === concept);
      concept = item.concept_id;
      if (item.row === cursor) cursor = cursor.nextSibling;
      else rows.insertBefore(item.row, cursor);
    }
  }

  version(item) {
    return `${this.i18n.lang}|${item.status}|${item.attempts}|${item.error}|${!!item.generating}`;
  }

  redrawAll() {
    GROUPS.forEach((name) => this.mark(name));
  }

  row(item) {
    const { i18n } = this;
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.status = item.status;
    if (item.generating) li.dataset.generating = "true";
    li.dataset.concept = item.concept_id;
    li.dataset.type = item.content_type;
    const head = document.createElement("div");
    head.className = "item-head";
    head.append(
      span("item-title", item.title),
      span("item-type", i18n.type(item.content_type)),
      span("item-state", item.generating ? i18n.t("item_generating") : i18n.itemStatus(item.status)),
    );
    li.append(head);
    if (item.status === "completed") li.append(this.contentView(item));
    if (item.status === "failed") {
      if (item.attempts) head.append(span("item-attempts", i18n.t("attempts", { n: item.attempts })));
      if (item.error) {
        const error = document.createElement("p");
        error.className = "item-error";
        error.textContent = item.error;
        li.append(error);
      }
    }
    return li;
  }

  // A closed <details> whose body is filled from the item API the first time it opens.
  contentView(item) {
    const { i18n } = this;
    const details = document.createElement("details");
    details.className = "item-content";
    const summary = document.createElement("summary");
    summary.textContent = i18n.t("show_content");
    const body = document.createElement("pre");
    body.className = "content-text";
    const usage = document.createElement("p");
    usage.className = "content-usage";
    usage.hidden = true;
    details.append(summary, body, usage);
    let asked = false;
    details.addEventListener("toggle", async () => {
      if (!details.open || asked) return;
      asked = true;
      body.textContent = i18n.t("content_loading");
      try {
        const full = await this.fetchItem(item.concept_id, item.content_type);
        const content = full.content;
        body.textContent = typeof content === "string" ? content : JSON.stringify(content, null, 2);
        if (full.usage) {
          usage.textContent = i18n.t("content_usage", {
            prompt: full.usage.prompt_tokens, completion: full.usage.completion_tokens });
          usage.hidden = false;
        }
      } catch {
        asked = false; // closing and opening again tries again
        body.textContent = i18n.t("content_unavailable");
      }
    });
    return details;
  }

  empty() {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = this.i18n.t("group_empty");
    return li;
  }
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// Where `position` is, or goes, in a list sorted by position.
function indexFor(list, position) {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (list[mid].position < position) low = mid + 1;
    else high = mid;
  }
  return low;
}
