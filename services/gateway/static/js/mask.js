// The remove-object mask: paint over the photo with a round brush; strokes are
// kept in the photo's own pixels, so the mask sent is exactly the photo's size,
// white where to remove and black elsewhere (API.md). Undo drops the last stroke.

import { h, uid } from "./dom.js";

export class MaskPainter {
  constructor(onChange) {
    this.onChange = onChange;
    this.item = null; // the input whose strokes are painted (item.strokes)
    const sizeId = uid("brush");
    this.size = h("input", { type: "range", id: sizeId, min: 4, max: 120, value: 32 });
    this.sizeOut = h("output", { for: sizeId, class: "value" }, "32 px");
    this.size.addEventListener("input", () => { this.sizeOut.textContent = `${this.size.value} px`; });
    this.photo = h("img", { alt: "", class: "mask-photo" });
    this.overlay = h("canvas", {
      class: "mask-overlay", tabindex: 0, role: "img",
      "aria-label": "Mask: paint over what to remove. Ctrl+Z undoes a stroke.",
    });
    this.undoButton = h("button", { type: "button", onclick: () => this.undo() }, "Undo stroke");
    this.clearButton = h("button", { type: "button", onclick: () => this.clear() }, "Clear mask");
    this.status = h("p", { class: "hint", "aria-live": "polite" });
    this.element = h("div", { class: "field mask-painter", dataset: { field: "mask" } },
      h("p", { class: "label" }, "Mask: paint over the object to remove"),
      h("div", { class: "mask-stage" }, this.photo, this.overlay),
      h("div", { class: "row mask-tools" },
        h("label", { for: sizeId }, "Brush size"), this.size, this.sizeOut,
        h("span", { class: "buttons" }, this.undoButton, this.clearButton)),
      this.status);
    this.bindPointer();
    this.overlay.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); this.undo(); }
    });
    new ResizeObserver(() => this.redraw()).observe(this.overlay);
  }

  show(item) {
    this.item = item;
    if (!item) { this.element.hidden = true; return; }
    this.element.hidden = false;
    item.strokes = item.strokes || [];
    this.photo.src = item.src;
    this.photo.alt = `Photo to paint the mask on: ${item.name}`;
    this.photo.onload = () => this.redraw();
    this.redraw();
  }

  imageSize() {
    const n = this.photo;
    return n.naturalWidth ? [n.naturalWidth, n.naturalHeight] : null;
  }

  toImage(event) {
    const rect = this.overlay.getBoundingClientRect();
    const [iw, ih] = this.imageSize();
    return [((event.clientX - rect.left) / rect.width) * iw, ((event.clientY - rect.top) / rect.height) * ih];
  }

  bindPointer() {
    let stroke = null;
    this.overlay.addEventListener("pointerdown", (e) => {
      if (!this.item || !this.imageSize()) return;
      this.overlay.setPointerCapture(e.pointerId);
      const rect = this.overlay.getBoundingClientRect();
      const width = (Number(this.size.value) * this.imageSize()[0]) / rect.width;
      stroke = { width, points: [this.toImage(e)] };
      this.item.strokes.push(stroke);
      this.redraw();
    });
    this.overlay.addEventListener("pointermove", (e) => {
      if (!stroke) return;
      stroke.points.push(this.toImage(e));
      this.redraw();
    });
    const end = () => {
      if (!stroke) return;
      stroke = null;
      this.changed();
    };
    this.overlay.addEventListener("pointerup", end);
    this.overlay.addEventListener("pointercancel", end);
  }

  undo() {
    if (this.item?.strokes.length) { this.item.strokes.pop(); this.redraw(); this.changed(); }
  }

  clear() {
    if (this.item) { this.item.strokes = []; this.redraw(); this.changed(); }
  }

  changed() {
    const n = this.item?.strokes.length || 0;
    this.status.textContent = n ? `${n} stroke${n === 1 ? "" : "s"} painted.` : "Nothing painted yet.";
    this.undoButton.disabled = this.clearButton.disabled = n === 0;
    this.onChange();
  }

  static paint(g, strokes, color) {
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineCap = "round";
    g.lineJoin = "round";
    for (const s of strokes) {
      g.lineWidth = s.width;
      if (s.points.length === 1) {
        const [x, y] = s.points[0];
        g.beginPath(); g.arc(x, y, s.width / 2, 0, Math.PI * 2); g.fill();
        continue;
      }
      g.beginPath();
      g.moveTo(...s.points[0]);
      for (const p of s.points.slice(1)) g.lineTo(...p);
      g.stroke();
    }
  }

  redraw() {
    const size = this.imageSize();
    if (!size) return;
    const [iw, ih] = size;
    const c = this.overlay;
    if (c.width !== iw || c.height !== ih) { c.width = iw; c.height = ih; }
    const g = c.getContext("2d");
    g.clearRect(0, 0, iw, ih);
    MaskPainter.paint(g, this.item?.strokes || [], "rgba(239, 68, 68, 0.55)");
    if (this.status.textContent === "") this.changed();
  }

  // The mask of `item` as a PNG the size of its photo, or null when unpainted.
  static async maskOf(item) {
    if (!item.strokes?.length || !item.width) return null;
    const c = document.createElement("canvas");
    c.width = item.width;
    c.height = item.height;
    const g = c.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, c.width, c.height);
    MaskPainter.paint(g, item.strokes, "#fff");
    return new Promise((resolve) => c.toBlob(resolve, "image/png"));
  }
}
