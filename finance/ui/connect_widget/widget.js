// The connect widget's browser side (st.components.v2; plain ES module, no build step).
//
// It draws the screen that finance/connect_flow.py describes in `data` and sends the user's actions back as
// one trigger, "event": {type, step_id, ...}. Python decides what an event means and answers with the next
// screen. Offline it is our own sandbox widget; with real credentials it opens the provider's hosted widget from
// its CDN and reports that widget's callbacks the same way. Each provider's launcher (its kit's JavaScript, appended
// to this module by finance/ui/connect_widget.py) sets `launchers[kind] = async (launch, report) => {...}`.
// Everything from `data` is inserted as text, never as HTML. Words come translated in `data.texts` (English text →
// the interface language's, from the gettext catalogs; finance/ui/connect_widget.py): t("Open {name}", {name}).

const launchers = {}; // hosted widget kind → its launcher (the providers' kits add theirs below this module)
const launched = new Set(); // tokens whose hosted widget was already opened on this page
const scripts = new Map(); // CDN script url → load promise
const drafts = new Map(); // typed values, so a redraw of the same screen keeps them
let texts = {}; // the current screen's translations (set on every draw)

function t(text, values = {}) {
  let out = texts[text] || text;
  for (const [name, value] of Object.entries(values)) out = out.split(`{${name}}`).join(String(value));
  return out;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

function loadScript(url) {
  if (!scripts.has(url)) {
    scripts.set(url, new Promise((resolve, reject) => {
      const script = el("script", { src: url, async: true });
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => {
        scripts.delete(url);
        script.remove();
        reject(new Error(`could not load ${url}`));
      });
      document.head.append(script);
    }));
  }
  return scripts.get(url);
}

function logo(institution) {
  const badge = el("span", { class: "ofw-logo", "aria-hidden": "true" });
  if (institution.color) badge.style.background = institution.color;
  if (institution.logo) badge.append(el("img", { src: institution.logo, alt: "" }));
  else badge.textContent = (institution.name || "?").trim().charAt(0).toUpperCase();
  return badge;
}

function title(data) {
  if (data.mode === "reconnect") {
    return data.institution ? t("Reconnect {name}", { name: data.institution.name }) : t("Reconnect this bank");
  }
  return t("Connect a bank with {name}", { name: data.label });
}

function notes(data) {
  return [
    data.message ? el("p", {
      class: data.step !== "done" ? "ofw-msg" : (data.ok ? "ofw-msg ofw-success" : "ofw-msg ofw-warn"),
      role: "status", text: data.message,
    }) : null,
    data.error ? el("p", { class: "ofw-error", role: "alert", text: data.error }) : null,
  ];
}

function draftKey(data, name) {
  return `${data.provider}|${data.mode}|${data.step_id}|${name}`;
}

function fieldInput(data, field, extra = {}) {
  const key = draftKey(data, field.name);
  const input = el("input", {
    name: field.name, type: field.type === "password" ? "password" : "text",
    inputmode: field.type === "number" ? "numeric" : undefined,
    placeholder: field.placeholder || undefined, required: !field.optional, autocomplete: "off",
    spellcheck: "false", ...extra,
  });
  input.value = drafts.get(key) || "";
  input.addEventListener("input", () => drafts.set(key, input.value));
  return el("label", { class: "ofw-field" }, el("span", { text: field.label }), input);
}

function valuesOf(form) {
  const values = {};
  for (const input of form.querySelectorAll("input[name]")) values[input.name] = input.value;
  return values;
}

function chooseScreen(data, send) {
  const banks = (data.institutions || []).map((bank) => el("li", {},
    el("button", {
      type: "button", class: "ofw-bank",
      "aria-label": bank.sandbox ? t("{name} (sandbox)", { name: bank.name }) : bank.name,
      onclick: () => send("choose", { institution_id: bank.id }, t("Opening {name}…", { name: bank.name })),
    }, logo(bank), el("span", { class: "ofw-name", text: bank.name }),
    bank.sandbox ? el("span", { class: "ofw-tag", text: t("Sandbox") }) : null)));
  return [el("p", { class: "ofw-lead", text: t("Pick your bank") }), el("ul", { class: "ofw-banks" }, banks)];
}

function credentialsScreen(data, send) {
  const reconnect = data.mode === "reconnect";
  const form = el("form", { class: "ofw-form", novalidate: true });
  form.append(
    data.institution ? el("div", { class: "ofw-bankline" }, logo(data.institution),
      el("strong", { text: data.institution.name })) : null,
    el("p", { class: "ofw-lead", text: reconnect ? t("Log in again to renew access.") : t("Log in to your bank.") }),
    ...(data.fields || []).map((field) => fieldInput(data, field)),
    el("div", { class: "ofw-actions" },
      el("button", { type: "submit", class: "ofw-primary", text: reconnect ? t("Reconnect") : t("Connect") }),
      el("button", { type: "button", class: "ofw-secondary", text: reconnect ? t("Cancel") : t("Back"),
        onclick: () => send("back") })),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send("submit", { values: valuesOf(form) }, t("Talking to the bank…"));
  });
  return [form];
}

function mfaScreen(data, send) {
  const prompt = data.prompt || { name: "token", label: t("Security code") };
  const form = el("form", { class: "ofw-form", novalidate: true });
  form.append(
    el("p", { class: "ofw-lead", text: data.institution ? t("{name} sent you a code.", { name: data.institution.name })
      : t("The bank sent you a code.") }),
    prompt.instructions ? el("p", { class: "ofw-small", text: prompt.instructions }) : null,
    fieldInput(data, { name: prompt.name, label: prompt.label, type: "number" },
      { autocomplete: "one-time-code" }),
    el("div", { class: "ofw-actions" },
      el("button", { type: "submit", class: "ofw-primary", text: t("Send code") }),
      el("button", { type: "button", class: "ofw-secondary", text: t("Cancel"), onclick: () => send("cancel") })),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send("mfa", { values: valuesOf(form) }, t("Checking the code…"));
  });
  return [form];
}

function hostedName(data) {
  return data.hosted_name || data.label;
}

function readyScreen(data, send) {
  const reconnect = data.mode === "reconnect";
  const name = hostedName(data);
  return [
    el("p", { class: "ofw-lead", text: t("{name} opens in a window where you log in to your bank; your credentials "
      + "go to {provider}, never to this app.", { name, provider: data.label }) }),
    el("div", { class: "ofw-actions" },
      el("button", { type: "button", class: "ofw-primary",
        text: reconnect ? t("Reconnect with {name}", { name }) : t("Open {name}", { name }),
        onclick: () => send("open", {}, t("Opening {name}…", { name })) }),
      reconnect ? el("button", { type: "button", class: "ofw-secondary", text: t("Cancel"),
        onclick: () => send("cancel") }) : null),
  ];
}

function launchScreen(data, send, report) {
  const name = hostedName(data);
  const open = () => {
    const launcher = launchers[data.kind];
    (launcher ? launcher(data.launch, report) : Promise.reject(new Error("no launcher")))
      .catch(() => report("script_error", {}));
  };
  if (data.launch && data.launch.token && !launched.has(data.launch.token)) {
    launched.add(data.launch.token);
    open();
  }
  return [
    el("p", { class: "ofw-lead", text: t("{name} is open. Finish there; this page updates when you are done.",
      { name }) }),
    el("div", { class: "ofw-actions" },
      el("button", { type: "button", class: "ofw-secondary", text: t("Open {name} again", { name }),
        onclick: () => send("open", {}, t("Opening {name}…", { name })) })),
  ];
}

function doneScreen(data, send) {
  const reconnect = data.mode === "reconnect";
  return [
    el("div", { class: "ofw-actions" },
      el("button", { type: "button", class: "ofw-primary", text: reconnect ? t("Close") : t("Connect another bank"),
        onclick: () => send(reconnect ? "cancel" : "restart") })),
  ];
}

function errorScreen(data, send) {
  const reconnect = data.mode === "reconnect";
  return [
    el("div", { class: "ofw-actions" },
      el("button", { type: "button", class: "ofw-primary", text: t("Try again"), onclick: () => send("retry") }),
      el("button", { type: "button", class: "ofw-secondary",
        text: reconnect ? t("Cancel") : (data.kind === "offline" ? t("Pick another bank") : t("Start over")),
        onclick: () => send(reconnect ? "cancel" : "back") })),
  ];
}

function syncingScreen(data) {
  return [el("p", { class: "ofw-lead", text: data.institution
    ? t("{name} is connected; the first sync is running…", { name: data.institution.name })
    : t("The bank is connected; the first sync is running…") })];
}

const SCREENS = {
  choose: chooseScreen, credentials: credentialsScreen, mfa: mfaScreen, ready: readyScreen,
  launch: launchScreen, done: doneScreen, error: errorScreen, syncing: syncingScreen,
};

export default function connectWidget(component) {
  const { data, parentElement, setTriggerValue } = component;
  texts = data.texts || {};
  let root = parentElement.querySelector(".ofw");
  if (!root) {
    root = el("div", { class: "ofw" });
    parentElement.append(root);
  }
  let busy = false;
  let timer = null;
  const status = el("p", { class: "ofw-busy", role: "status", hidden: true });
  // A callback of the provider's hosted widget: always delivered, with the step it was opened from.
  const report = (type, payload) => setTriggerValue("event", { type, step_id: data.step_id, ...payload });
  // A click: once per screen, then the controls wait for Python's next screen.
  const send = (type, payload = {}, label = t("Working…")) => {
    if (busy) return;
    busy = true;
    root.classList.add("ofw-is-busy");
    for (const control of root.querySelectorAll("button, input")) control.disabled = true;
    status.textContent = label;
    status.hidden = false;
    timer = setTimeout(() => { // Python always answers with a new screen; never leave the widget stuck
      busy = false;
      root.classList.remove("ofw-is-busy");
      for (const control of root.querySelectorAll("button, input")) control.disabled = false;
      status.hidden = true;
    }, 120000);
    report(type, payload);
  };
  const screen = SCREENS[data.step] || (() => []);
  root.replaceChildren(...[
    el("div", { class: "ofw-head" },
      el("span", { class: "ofw-title", text: title(data) }),
      data.kind === "offline" ? el("span", { class: "ofw-tag", text: t("Offline sandbox") }) : null),
    ...notes(data),
    ...screen(data, send, report),
    status,
    data.hint ? el("p", { class: "ofw-hint", text: data.hint }) : null,
  ].filter(Boolean));
  const first = root.querySelector("input:not([disabled])");
  if (first && (data.step === "credentials" || data.step === "mfa")) first.focus({ preventScroll: true });
  return () => clearTimeout(timer);
}
