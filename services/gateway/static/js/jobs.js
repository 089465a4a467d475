// One card per job: live status and stage while it runs, then the result with a
// before/after slider, zoom, the engines that served it, QA flags when the job
// has them, credits and a download link; or the API's error and guidance.
// Audio plays in an <audio> player, video in a <video> player, and a try-on shows
// its result beside the person photo.

import { h, label, credits, uid } from "./dom.js";

const TERMINAL = new Set(["completed", "failed", "blocked", "canceled"]);
const ZOOMS = [1, 1.5, 2, 3, 4];

export class JobCard {
  constructor({ operation, name, before }) {
    this.operation = operation;
    this.before = before; // URL of the input, for the comparison (null for generate)
    this.status = h("span", { class: "status status-queued" }, "waiting");
    this.progress = h("progress", { "aria-label": `Progress of ${name}` });
    this.body = h("div", { class: "job-body" });
    this.element = h("li", { class: "job", dataset: { state: "waiting" } },
      h("div", { class: "job-head" },
        h("span", { class: "job-title" }, h("strong", {}, label(operation)), " · ", name),
        this.status),
      this.progress, this.body);
    this.state = "waiting";
  }

  setState(state, text) {
    this.state = state;
    this.element.dataset.state = state;
    this.status.className = `status status-${state}`;
    this.status.textContent = text || state;
  }

  update(job) {
    const text = job.status === "processing" && job.stage ? `processing · ${job.stage}` : job.status;
    this.setState(job.status, text);
    if (job.generation_id) this.element.dataset.jobId = job.generation_id;
    if (!TERMINAL.has(job.status)) return;
    this.progress.remove();
    if (job.status === "completed") this.showResult(job);
    else this.showJobError(job);
  }

  fail(err) {
    this.setState("rejected", "rejected");
    this.progress.remove();
    this.body.replaceChildren(errorBox(err.code, err.message, err.guidance, err.status));
  }

  showJobError(job) {
    const e = job.error || {};
    const refunded = job.credits_refunded ? ` ${credits(job.credits_refunded)} refunded.` : "";
    this.body.replaceChildren(errorBox(e.error || job.status, e.message || `The job ended ${job.status}.`,
      `Nothing was charged.${refunded}`));
  }

  showResult(job) {
    if (job.format === "wav" || job.format === "mp4" || job.operation === "virtual-tryon") {
      this.showMedia(job);
      return;
    }
    const compare = new Compare(this.before, job);
    const facts = h("dl", { class: "facts" },
      fact("Engines", h("ul", { class: "engines" },
        Object.entries(job.engines || {}).map(([stage, engine]) =>
          h("li", {}, h("span", { class: "engine-stage" }, stage), " ", h("code", {}, engine))))),
      fact("Credits used", credits(job.credits_used)),
      fact("Output", `${job.width}×${job.height} ${String(job.format || "").toUpperCase()}`),
      job.processing_ms ? fact("Time", `${(job.processing_ms / 1000).toFixed(1)} s`) : null);
    const download = h("a", {
      class: "button primary", href: job.output_url,
      download: `${job.operation}-${job.generation_id}.${job.format === "jpeg" ? "jpg" : job.format}`,
    }, "Download");
    const parts = [compare.element, qaBox(job.qa), facts,
      h("div", { class: "row actions" }, download, compare.zoomControls)];
    this.body.replaceChildren(...parts.filter(Boolean));
  }

  showMedia(job) {
    let view;
    let output;
    if (job.format === "wav") {
      view = h("audio", { controls: true, preload: "metadata", src: job.output_url, class: "media-player" });
      output = `${job.duration} s WAV`;
    } else if (job.format === "mp4") {
      view = h("video", {
        controls: true, preload: "metadata", playsinline: true, src: job.output_url,
        width: job.width, height: job.height, class: "media-player",
      });
      output = `${job.width}×${job.height} MP4${job.duration ? `, ${job.duration} s` : ""}`;
    } else {
      // The try-on body carries the PNG inline; output_url is the same file.
      const src = job.result_image_b64 ? `data:image/png;base64,${job.result_image_b64}` : job.output_url;
      view = h("div", { class: "tryon-pair" },
        this.before ? h("figure", {}, h("img", { src: this.before, alt: "Person photo" }), h("figcaption", {}, "Person")) : null,
        h("figure", {}, h("img", { class: "after", src, alt: "Try-on result" }), h("figcaption", {}, "Try-on")));
      output = `${job.width}×${job.height} PNG`;
    }
    const facts = h("dl", { class: "facts" },
      fact("Engines", h("ul", { class: "engines" },
        Object.entries(job.engines || {}).map(([stage, engine]) =>
          h("li", {}, h("span", { class: "engine-stage" }, stage), " ", h("code", {}, engine))))),
      fact("Credits used", credits(job.credits_used)),
      fact("Output", output),
      job.processing_ms ? fact("Time", `${(job.processing_ms / 1000).toFixed(1)} s`) : null);
    const download = h("a", {
      class: "button primary", href: job.output_url,
      download: `${job.operation}-${job.generation_id}.${job.format}`,
    }, "Download");
    this.body.replaceChildren(...[view, qaBox(job.qa), facts, h("div", { class: "row actions" }, download)].filter(Boolean));
  }
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

export function errorBox(code, message, guidance, status) {
  return h("div", { class: "error-box", role: "alert" },
    h("p", { class: "error-message" }, h("strong", {}, message)),
    guidance ? h("p", { class: "error-guidance" }, guidance) : null,
    h("p", { class: "error-code" }, h("code", {}, code), status ? ` (HTTP ${status})` : ""));
}

// The QA verdict (job.qa = {scores, needs_review, reasons: [{code, message}]}).
function qaBox(qa) {
  if (!qa) return null;
  const reasons = qa.reasons || [];
  const scores = Object.entries(qa.scores || {});
  return h("div", { class: `qa ${qa.needs_review ? "qa-review" : "qa-ok"}` },
    h("p", {}, h("strong", {}, qa.needs_review ? "Needs review" : "QA passed")),
    reasons.length ? h("ul", {}, reasons.map((r) => h("li", {}, h("code", {}, r.code), " ", r.message))) : null,
    // The scores are nested objects (README, Image QA): folded away, readable when opened.
    scores.length ? h("details", {}, h("summary", {}, "Scores"),
      h("pre", {}, JSON.stringify(Object.fromEntries(scores), null, 1))) : null);
}

// Before/after: the result over the input, cut at the slider; zoom scrolls.
class Compare {
  constructor(before, job) {
    this.zoom = 0;
    const after = h("img", { class: "after", src: job.output_url, alt: `Result of ${job.operation}` });
    // Formats that keep transparency get a checkerboard behind them.
    const clear = job.format === "png" || job.format === "webp";
    this.stage = h("div", { class: `compare-stage${clear ? " transparent" : ""}` },
      before ? h("img", { class: "before", src: before, alt: "Before" }) : null,
      h("div", { class: "after-layer" }, after),
      before ? h("div", { class: "divider", "aria-hidden": "true" }) : null);
    this.stage.style.aspectRatio = `${job.width} / ${job.height}`;
    // Fit: the panel's width, the image's own width, and 60 % of the window's height.
    this.fit = `min(100%, ${job.width}px, ${(60 * job.width / job.height).toFixed(3)}vh)`;
    this.viewport = h("div", { class: "compare-viewport", tabindex: 0, "aria-label": "Result; scroll when zoomed" }, this.stage);
    const id = uid("cmp");
    this.range = h("input", { type: "range", id, min: 0, max: 100, value: before ? 50 : 0, disabled: !before });
    this.range.addEventListener("input", () => this.setPos(this.range.value));
    this.element = h("div", { class: "compare" }, this.viewport,
      h("div", { class: "row compare-range" },
        h("label", { for: id }, "Before"), this.range, h("span", { "aria-hidden": "true" }, "After")));
    this.zoomOut = h("button", { type: "button", "aria-label": "Zoom out", onclick: () => this.setZoom(this.zoom - 1) }, "−");
    this.zoomText = h("output", { class: "value", "aria-live": "polite" }, "1×");
    this.zoomIn = h("button", { type: "button", "aria-label": "Zoom in", onclick: () => this.setZoom(this.zoom + 1) }, "+");
    this.zoomControls = h("div", { class: "row zoom", role: "group", "aria-label": "Zoom" }, this.zoomOut, this.zoomText, this.zoomIn);
    this.setPos(this.range.value);
    this.setZoom(0);
  }

  setPos(value) {
    this.stage.style.setProperty("--pos", `${value}%`);
  }

  setZoom(level) {
    this.zoom = Math.max(0, Math.min(ZOOMS.length - 1, level));
    const z = ZOOMS[this.zoom];
    this.stage.style.width = `calc(${z} * ${this.fit})`;
    this.zoomText.textContent = `${z}×`;
    this.zoomOut.disabled = this.zoom === 0;
    this.zoomIn.disabled = this.zoom === ZOOMS.length - 1;
  }
}

// Runs `tasks` (async functions) with at most `cap` at once.
export async function runCapped(tasks, cap) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(cap, tasks.length) }, worker));
}

// Polls a job until it ends: quickly at first, then every 1.5 s. `get` fetches it
// (GET /v1/image/{id} unless the operation has its own route).
export async function follow(api, id, onUpdate, get = (i) => api.job(i)) {
  const started = Date.now();
  for (;;) {
    const job = await get(id);
    onUpdate(job);
    if (TERMINAL.has(job.status)) return job;
    await new Promise((r) => setTimeout(r, Date.now() - started < 10000 ? 500 : 1500));
  }
}

export { TERMINAL };
