// The studio: key, photos, operation, settings, runs and history, wired to the
// public API (/v1) and the request schemas of /openapi.json.

import { Api, ApiError } from "./api.js";
import { $, h, label, credits, when } from "./dom.js";
import { SettingsForm, operationSchema } from "./fields.js";
import { MaskPainter } from "./mask.js";
import { JobCard, errorBox, follow, runCapped } from "./jobs.js";

const api = new Api();
const state = {
  catalog: null, // GET /v1/models
  openapi: null,
  operation: "product-photo",
  items: [], // chosen photos: {id, name, file | url, src, width, height, strokes}
  active: null,
  running: false,
  historyCursor: null,
};
const form = new SettingsForm($("#settings-form"), () => updateRun());
const painter = new MaskPainter(() => updateRun());
$("#mask-slot").append(painter.element);
painter.show(null);

// -- the key -------------------------------------------------------------------

function showKeyPanel(show, error) {
  $("#key-panel").hidden = !show;
  $("#key-error").replaceChildren(error ? errorBox(error.code, error.message, error.guidance, error.status) : "");
  if (show) $("#key-input").focus();
}

async function connect() {
  try {
    const [catalog, openapi] = await Promise.all([api.models(), state.openapi || api.openapi()]);
    state.catalog = catalog;
    state.openapi = openapi;
    showKeyPanel(false);
    $("#key-button").textContent = "API key ✓";
    renderOperations();
    refreshBalance();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showKeyPanel(true, err);
  }
}

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  api.setKey($("#key-input").value);
  $("#key-input").value = "";
  connect();
});
$("#forget-key").addEventListener("click", () => {
  api.setKey("");
  $("#key-button").textContent = "API key";
  $("#balance").textContent = "";
  showKeyPanel(true);
});
$("#key-button").addEventListener("click", () => showKeyPanel($("#key-panel").hidden));
$("#dev-key").addEventListener("click", async () => {
  const key = await api.devKey();
  if (key) { api.setKey(key); connect(); }
});

async function refreshBalance() {
  try {
    const b = await api.balance();
    $("#balance").textContent = `${credits(b.credits_remaining)} · ${b.plan}`;
  } catch {
    $("#balance").textContent = "";
  }
}

// -- photos ----------------------------------------------------------------------

function addItem(item) {
  item.id = crypto.randomUUID();
  item.strokes = [];
  const img = new Image();
  img.addEventListener("load", () => {
    item.width = img.naturalWidth;
    item.height = img.naturalHeight;
    if (state.active === item) selectItem(item);
  });
  img.src = item.src;
  item.img = img;
  state.items.push(item);
  if (!state.active) state.active = item;
  renderItems();
  selectItem(state.active);
}

function addFiles(files) {
  for (const file of files) addItem({ name: file.name || "pasted image", file, src: URL.createObjectURL(file) });
}

function removeItem(item) {
  state.items = state.items.filter((i) => i !== item);
  if (item.file) URL.revokeObjectURL(item.src);
  if (state.active === item) state.active = state.items[0] || null;
  renderItems();
  selectItem(state.active);
}

function selectItem(item) {
  state.active = item;
  for (const li of document.querySelectorAll("#input-list li")) {
    li.classList.toggle("active", li.dataset.id === item?.id);
  }
  form.setPhoto(item ? item.img : null);
  painter.show(usesMask() ? item : null);
  updateRun();
}

function renderItems() {
  const list = $("#input-list");
  list.replaceChildren(...state.items.map((item) =>
    h("li", { dataset: { id: item.id }, class: item === state.active ? "active" : "" },
      h("button", { type: "button", class: "thumb", "aria-label": `Select ${item.name}`, onclick: () => selectItem(item) },
        h("img", { src: item.src, alt: "" })),
      h("span", { class: "name", title: item.name }, item.name),
      h("button", { type: "button", class: "remove", "aria-label": `Remove ${item.name}`, onclick: () => removeItem(item) }, "×"))));
}

const drop = $("#dropzone");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  addFiles([...e.dataTransfer.files]);
});
$("#file-input").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
$("#url-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const url = $("#url-input").value.trim();
  if (!url) return;
  addItem({ name: url.split("/").pop() || url, url, src: url });
  $("#url-input").value = "";
});
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  if (files.length) addFiles(files);
});

// -- operations and settings ---------------------------------------------------------

function opInfo(name) {
  return state.catalog?.operations.find((o) => o.operation === name);
}

function installHints(op) {
  return op.stages.filter((s) => s.required && !s.deployed)
    .flatMap((s) => s.engines.map((e) => e.install).filter(Boolean));
}

// Audio, video and try-on post JSON to their own endpoints (docs/media.md).
const isMedia = (op) => !op.endpoint.startsWith("/v1/image/");

function renderOperations() {
  const ops = state.catalog.operations;
  if (!opInfo(state.operation)?.available) state.operation = ops.find((o) => o.available)?.operation;
  $("#op-list").replaceChildren(...ops.map((op) => {
    const id = `op-${op.operation}`;
    const hints = op.available ? [] : installHints(op);
    // A media operation stays selectable before its model is deployed: a submit then
    // shows the API's 503 model_unavailable and its guidance (nothing is charged).
    const selectable = op.available || isMedia(op);
    return h("div", { class: `op ${op.available ? "" : "unavailable"}${isMedia(op) ? " media" : ""}` },
      h("input", {
        type: "radio", name: "operation", id, value: op.operation, class: "visually-hidden",
        checked: op.operation === state.operation, disabled: !selectable,
        "aria-describedby": `${id}-desc`,
      }),
      h("label", { for: id },
        h("span", { class: "op-name" }, label(op.operation),
          op.available ? "" : h("span", { class: "badge" }, "not installed")),
        h("span", { class: "op-credits" }, credits(op.credits)),
        h("span", { class: "op-desc", id: `${id}-desc` }, op.description)),
      op.available ? null : h("details", { class: "install" },
        h("summary", {}, "How to install"), h("ul", {}, hints.map((t) => h("li", {}, h("code", {}, t))))));
  }));
  buildSettings();
}

$("#op-list").addEventListener("change", (e) => {
  if (e.target.name !== "operation") return;
  state.operation = e.target.value;
  buildSettings();
});

function schema() {
  const op = opInfo(state.operation);
  return operationSchema(state.openapi, state.operation, op ? op.endpoint : undefined);
}

function usesMask() {
  return state.openapi ? schema().takesMask : false;
}

function buildSettings() {
  if (!state.operation) return;
  const op = opInfo(state.operation);
  const s = schema();
  form.build({ operation: state.operation, schema: s, presets: state.catalog.presets, opInfo: op });
  // The photos panel feeds the image operations only (try-on picks its two photos in
  // its settings); a media operation not yet deployed says so above its settings.
  $("#inputs-panel").hidden = s.media;
  const hints = op.available ? [] : installHints(op);
  $("#op-notice").replaceChildren(op.available ? "" : h("p", { class: "notice notice-missing" },
    h("strong", {}, `${label(op.operation)} is not installed: `),
    "a request answers 503 model_unavailable and costs nothing. ",
    hints.join(" ")));
  selectItem(state.active);
}

function updateRun() {
  const button = $("#run");
  const op = opInfo(state.operation);
  if (!op) { button.disabled = true; return; }
  const s = schema();
  const n = s.takesImage ? state.items.length : 1;
  const missing = form.missingPhotos(s);
  button.disabled = state.running || n === 0 || missing.length > 0;
  const what = s.takesImage ? ` on ${n} photo${n === 1 ? "" : "s"}` : "";
  // Audio and video prices depend on duration and resolution: GET /v1/models lists
  // the default request's, so the label says "from".
  const price = s.media && op.operation !== "virtual-tryon" ? `from ${credits(op.credits)}` : credits(op.credits * Math.max(n, 1));
  button.textContent = `Run ${label(op.operation).toLowerCase()}${what} · ${price}`;
  let note = "";
  if (missing.length) note = `Choose the ${missing.join(" and the ").toLowerCase()}.`;
  else if (s.takesImage && !n) note = "Choose at least one photo.";
  else if (s.takesMask && state.items.some((i) => !i.strokes.length) && !form.value("prompt")) {
    note = "Paint a mask on each photo (select it above), or name the object in the prompt.";
  }
  $("#run-note").textContent = note;
}

// -- running -----------------------------------------------------------------------------

function summary(cards) {
  const count = (pred) => cards.filter(pred).length;
  const done = count((c) => c.state === "completed");
  const failed = count((c) => ["failed", "blocked", "canceled", "rejected"].includes(c.state));
  const running = count((c) => ["queued", "processing", "submitting"].includes(c.state));
  const waiting = count((c) => c.state === "waiting");
  $("#batch-summary").textContent = cards.length > 1
    ? `Batch of ${cards.length}: ${done} done, ${running} running, ${waiting} waiting, ${failed} failed`
    : "";
}

async function runOne(item, operation, s, fields, card, all) {
  card.setState("submitting", "submitting");
  summary(all);
  try {
    let job;
    let get;
    if (s.media) {
      job = await api.submitJson(opInfo(operation).endpoint, fields);
      get = (id) => api.mediaJob(operation, id);
    } else {
      const mask = s.takesMask && item ? await MaskPainter.maskOf(item) : null;
      job = await api.submit(operation, { file: item?.file, url: item?.url, mask, fields });
    }
    card.update(job);
    summary(all);
    await follow(api, job.generation_id, (j) => { card.update(j); summary(all); }, get);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    card.fail(err);
    if (err.field) form.markInvalid(err.field);
  }
  summary(all);
}

$("#run").addEventListener("click", async () => {
  const s = schema();
  const operation = state.operation;
  const fields = form.values();
  form.markInvalid(null);
  const items = s.takesImage ? [...state.items] : [null];
  const person = form.photos.get("person_image");
  const cards = items.map((item) => new JobCard({
    operation, name: item ? item.name : fields.prompt || person?.name || operation,
    before: item ? item.src : person?.src || null,
  }));
  $("#jobs-empty").hidden = true;
  $("#jobs").prepend(...cards.map((c) => c.element));
  cards[0].element.scrollIntoView({ block: "nearest", behavior: "smooth" });
  state.running = true;
  updateRun();
  const cap = Math.max(1, Math.min(8, Number($("#concurrency").value) || 1));
  await runCapped(items.map((item, i) => () => runOne(item, operation, s, fields, cards[i], cards)), cap);
  state.running = false;
  updateRun();
  refreshBalance();
});

// -- history ------------------------------------------------------------------------------

function historyThumb(job) {
  if (!job.output_url) {
    return h("span", { class: "thumb-none", "aria-hidden": "true" }, job.status === "completed" ? "expired" : "—");
  }
  if (job.format === "wav") return h("span", { class: "thumb-none", "aria-hidden": "true" }, "♪ WAV");
  if (job.format === "mp4") {
    return h("video", { src: job.output_url, preload: "metadata", muted: true, "aria-label": `Result of ${job.operation}` });
  }
  return h("img", { src: job.output_url, alt: `Result of ${job.operation}`, loading: "lazy" });
}

function historyItem(job) {
  const thumb = historyThumb(job);
  const engines = Object.entries(job.engines || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
  return h("li", { class: "history-item" },
    h("div", { class: "thumb" }, thumb),
    h("div", { class: "history-text" },
      h("p", {}, h("strong", {}, label(job.operation)), " ",
        h("span", { class: `status status-${job.status}` }, job.status)),
      h("p", { class: "hint" }, `${when(job.created_at)} · ${credits(job.credits_used)}`,
        job.width ? ` · ${job.width}×${job.height}` : ""),
      engines ? h("p", { class: "hint" }, engines) : null,
      job.error ? h("p", { class: "hint" }, job.error.message) : null),
    job.output_url ? h("a", { class: "button", href: job.output_url, download: "" }, "Download") : null);
}

async function loadHistory(more = false) {
  const list = $("#history");
  if (!more) { list.replaceChildren(); state.historyCursor = null; }
  try {
    const page = await api.usage(more ? state.historyCursor : null);
    list.append(...page.jobs.map(historyItem));
    state.historyCursor = page.next_cursor;
    $("#history-more").hidden = !page.next_cursor;
    $("#history-empty").hidden = list.childElementCount > 0;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    list.replaceChildren(h("li", {}, errorBox(err.code, err.message, err.guidance, err.status)));
  }
}

function showView(name) {
  for (const view of ["studio", "history"]) {
    $(`#view-${view}`).hidden = view !== name;
    $(`#tab-${view}`).setAttribute("aria-pressed", String(view === name));
  }
  if (name === "history") { loadHistory(); refreshBalance(); }
}
$("#tab-studio").addEventListener("click", () => showView("studio"));
$("#tab-history").addEventListener("click", () => showView("history"));
$("#history-refresh").addEventListener("click", () => loadHistory());
$("#history-more").addEventListener("click", () => loadHistory(true));

// -- start ------------------------------------------------------------------------------

(async () => {
  const devKey = await api.devKey();
  $("#dev-key").hidden = !devKey;
  if (api.key) connect();
  else showKeyPanel(true);
})();
