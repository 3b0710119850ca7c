// The page's words: the message catalogue of the page's language (a JSON data block the server
// rendered), and switching to the other language's catalogue without a reload. Statuses, steps
// and content types are translated through keys; titles, errors and update messages are user
// data or the server's own text and are shown as given.

const PLACEHOLDER = /\{(\w+)\}/g;

export function createI18n(messages, lang) {
  const state = { messages, lang };

  function t(key, values = {}) {
    const text = Object.hasOwn(state.messages, key) ? state.messages[key] : key;
    return text.replace(PLACEHOLDER, (match, name) =>
      Object.hasOwn(values, name) ? String(values[name]) : match);
  }

  function known(prefix, value, fallback) {
    const key = `${prefix}_${value}`;
    return Object.hasOwn(state.messages, key) ? state.messages[key] : fallback;
  }

  return {
    t,
    get lang() {
      return state.lang;
    },
    status: (status) => known("status", status, status.replaceAll("_", " ")),
    step: (step) => (step ? known("step", step, step.replaceAll("_", " ")) : t("no_value")),
    itemStatus: (status) => known("item", status, status),
    type: (type) => known("type", type, type),

    // Every element marked `data-i18n="key"` shows that message.
    applyStatic(root) {
      for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
      document.documentElement.lang = state.lang;
    },

    // The message with `{n}` as a span of `id` that keeps the number (so it updates in place).
    fillNumber(el, key, id, n) {
      const [before, after = ""] = state.messages[key].split("{n}");
      const number = document.createElement("span");
      number.id = id;
      number.textContent = String(n);
      el.replaceChildren(before, number, after);
    },

    async use(lang) {
      const response = await fetch(`/static/i18n/${encodeURIComponent(lang)}.json`);
      if (!response.ok) throw new Error(`no catalogue for ${lang}`);
      state.messages = await response.json();
      state.lang = lang;
    },
  };
}

export function readCatalogue() {
  const block = document.getElementById("messages");
  return JSON.parse(block ? block.textContent : "{}");
}

// The English / 简体中文 buttons: swap the catalogue in place (the socket stays open), mark the
// pressed button, keep the choice in the URL's `lang` (a reload keeps it), then `redraw`.
export function bindLanguageSwitch(i18n, root, redraw) {
  const buttons = [...document.querySelectorAll("button.lang")];
  for (const button of buttons) {
    button.addEventListener("click", async () => {
      const lang = button.dataset.lang;
      if (lang === i18n.lang) return;
      try {
        await i18n.use(lang);
      } catch (_) {
        return; // the page stays in its language
      }
      i18n.applyStatic(root);
      root.dataset.lang = lang;
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      const url = new URL(window.location.href);
      url.searchParams.set("lang", lang);
      history.replaceState(null, "", url);
      redraw();
    });
  }
}
