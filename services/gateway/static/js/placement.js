// A live preview of where product-photo puts the product: the canvas at the
// chosen aspect, the preset behind it, and the product's box at `scale` of the
// canvas with its centre at x %, y % (services/compositor/layout.py's rule). The
// photo's proportions stand in for the product's box, which the server finds by
// matting.

import { h } from "./dom.js";

const BOX = 220; // the preview's longest side, CSS px

export class PlacementPreview {
  constructor(form) {
    this.form = form;
    this.canvas = h("canvas", {
      class: "placement", role: "img",
      "aria-label": "Preview of the product's place on the canvas",
    });
    this.caption = h("figcaption", { class: "hint" });
    this.element = h("figure", { class: "field placement-figure" }, this.canvas, this.caption);
    this.backgrounds = new Map();
  }

  background(preset) {
    if (!preset || preset === "custom") return null;
    let img = this.backgrounds.get(preset);
    if (!img) {
      img = new Image();
      img.addEventListener("load", () => this.draw());
      img.src = `/studio/presets/${encodeURIComponent(preset)}.webp`;
      this.backgrounds.set(preset, img);
    }
    return img.complete && img.naturalWidth ? img : null;
  }

  draw() {
    const f = this.form;
    const photo = f.photo && f.photo.naturalWidth ? f.photo : null;
    const photoAspect = photo ? photo.naturalWidth / photo.naturalHeight : 3 / 4;
    const aspect = (f.canvasAspect && f.canvasAspect()) || photoAspect;
    const cw = aspect >= 1 ? BOX : Math.round(BOX * aspect);
    const ch = aspect >= 1 ? Math.round(BOX / aspect) : BOX;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(cw * ratio);
    this.canvas.height = Math.round(ch * ratio);
    this.canvas.style.width = `${cw}px`;
    this.canvas.style.height = `${ch}px`;
    const g = this.canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);

    const bg = this.background(f.value("preset"));
    g.fillStyle = "#f4f4f5";
    g.fillRect(0, 0, cw, ch);
    if (bg) {
      const s = Math.max(cw / bg.naturalWidth, ch / bg.naturalHeight);
      g.drawImage(bg, (cw - bg.naturalWidth * s) / 2, (ch - bg.naturalHeight * s) / 2,
        bg.naturalWidth * s, bg.naturalHeight * s);
      // The thumbnail has a bottle of its own: veil it so the box reads as the product.
      g.fillStyle = "rgba(255,255,255,0.55)";
      g.fillRect(0, 0, cw, ch);
    }

    const scale = f.value("scale") ?? 0.8;
    const x = f.value("x") ?? 50;
    const y = f.value("y") ?? 55;
    const bw = photoAspect, bh = 1;
    const fit = Math.min(cw / bw, ch / bh);
    const w = bw * fit * scale, hgt = bh * fit * scale;
    const left = (x / 100) * cw - w / 2, top = (y / 100) * ch - hgt / 2;
    if (photo) {
      g.globalAlpha = 0.85;
      g.drawImage(photo, left, top, w, hgt);
      g.globalAlpha = 1;
    } else {
      g.fillStyle = "rgba(79,70,229,0.25)";
      g.fillRect(left, top, w, hgt);
    }
    g.setLineDash([5, 4]);
    g.strokeStyle = "#4f46e5";
    g.lineWidth = 2;
    g.strokeRect(left, top, w, hgt);
    g.setLineDash([]);
    g.fillStyle = "#4f46e5";
    g.beginPath();
    g.arc((x / 100) * cw, (y / 100) * ch, 3.5, 0, Math.PI * 2);
    g.fill();

    this.caption.textContent = `Product at ${Math.round(scale * 100)} % of the canvas, centre ${x} %, ${y} %` +
      (photo ? " (the photo stands in for the product)." : ".");
  }
}
