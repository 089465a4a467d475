// The settings form of one operation, built from the request schema the server
// publishes in /openapi.json (names, types, enums, defaults, limits) and the
// presets of /v1/models. A few fields get their own controls: preset thumbnails,
// the canvas (aspect ratio or exact size), scale and x/y with a placement preview.

import { h, label, uid } from "./dom.js";
import { PlacementPreview } from "./placement.js";

// Not offered in the studio: the image inputs (chosen above), webhooks (a browser
// polls instead), an alias, and relighting, which the server refuses (422).
const HIDDEN = new Set([
  "image", "mask", "image_url", "mask_url", "webhook_url", "scene_prompt",
  "lighting", "lighting_prompt",
]);
const ADVANCED = new Set([
  "seed", "negative_prompt", "steps", "guidance_scale", "padding", "megapixel",
  "detail_transfer", "detailer_mode",
]);
// Product-photo reads best as: the look, then the canvas and placement, then encoding.
const ORDER = [
  "person_image", "garment_image", "category",
  "preset", "background_prompt", "prompt", "shadow_type", "aspect_ratio", "scale", "x", "y",
];
// Fields the schema types as a free string but the server checks against a list
// (try-on's category: 422 invalid_category otherwise, docs/media.md).
const CHOICES = { category: ["upperbody", "lowerbody", "dress"] };
const ASPECTS = ["1:1", "4:5", "3:4", "2:3", "16:9", "9:16", "21:9"];
const MAX_SIDE = 4096; // output_size's limit (its description: "16-4096 a side")

// The schema of one property, with anyOf [X, null] folded into X + nullable.
function flatten(prop) {
  if (!prop.anyOf) return { ...prop, nullable: false };
  const inner = prop.anyOf.find((s) => s.type !== "null") || {};
  return { ...inner, ...prop, anyOf: undefined, type: inner.type, nullable: true };
}

// `path`: the operation's endpoint as GET /v1/models lists it; the image operations
// post to /v1/image/{name}, audio, video and try-on to PixelAPI's own paths.
export function operationSchema(openapi, operation, path = `/v1/image/${operation}`) {
  const op = openapi.paths?.[path]?.post;
  const content = op?.requestBody?.content || {};
  const schema = (content["multipart/form-data"] || content["application/json"] || {}).schema || {};
  return {
    properties: schema.properties || {},
    required: new Set(schema.required || []),
    takesImage: Boolean(schema.properties?.image || schema.properties?.image_url),
    takesMask: Boolean(schema.properties?.mask),
    jsonOnly: !content["multipart/form-data"],
    media: !path.startsWith("/v1/image/"),
    // Try-on's photos: base64 strings in the JSON body, picked as files here.
    photoFields: Object.keys(schema.properties || {}).filter((n) => /_image$/.test(n)),
  };
}

// Names that read better spelled out than derived from the field name.
const LABELS = {
  bg_color: "Background colour", crop: "Crop to the subject", mask_only: "Mask only",
  person_image: "Person photo", garment_image: "Garment photo",
};
const fieldLabel = (name) => LABELS[name] || label(name);

function describe(prop, id) {
  return prop.description ? h("p", { class: "hint", id }, prop.description) : null;
}

function numberRange(prop) {
  const min = prop.minimum ?? (prop.exclusiveMinimum !== undefined ? prop.exclusiveMinimum : undefined);
  const step = prop.type === "integer" ? 1 : (prop.maximum !== undefined && prop.maximum <= 1 ? 0.01 : "any");
  return { min, max: prop.maximum, step };
}

export class SettingsForm {
  // root: the <form>; onChange: called after any change (the run button's label).
  constructor(root, onChange) {
    this.root = root;
    this.onChange = onChange;
    this.readers = new Map(); // field -> () => value | undefined (not sent)
    this.preview = null;
    this.photo = null; // the active input's <img>, for the placement preview
    this.photos = new Map(); // try-on's photo fields -> {name, src, base64}
    root.addEventListener("input", () => this.changed());
    root.addEventListener("change", () => this.changed());
  }

  setPhoto(img) {
    this.photo = img;
    if (this.preview) this.preview.draw();
  }

  build({ operation, schema, presets, opInfo }) {
    this.root.replaceChildren();
    this.readers.clear();
    for (const p of this.photos.values()) URL.revokeObjectURL(p.src);
    this.photos.clear();
    this.preview = null;
    const main = h("div", { class: "fields" });
    const advanced = h("div", { class: "fields" });
    const rank = (n) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
    const names = Object.keys(schema.properties).filter((n) => !HIDDEN.has(n))
      .sort((a, b) => rank(a) - rank(b));
    const done = new Set();
    for (const name of names) {
      if (done.has(name)) continue;
      const prop = flatten(schema.properties[name]);
      const required = schema.required.has(name);
      let control;
      if (schema.photoFields.includes(name)) control = this.photoControl(name, prop, required);
      else if (name === "preset") control = this.presetControl(prop, presets);
      else if (name === "aspect_ratio" && schema.properties.output_size) {
        control = this.canvasControl();
        done.add("output_size");
      } else if (name === "output_size") control = this.canvasControl();
      else control = this.genericControl(name, prop, required);
      (ADVANCED.has(name) ? advanced : main).append(control);
      done.add(name);
    }
    if (["scale", "x", "y"].every((n) => n in schema.properties) && operation === "product-photo") {
      this.preview = new PlacementPreview(this);
      const anchor = main.querySelector('[data-field="scale"]');
      main.insertBefore(this.preview.element, anchor);
    }
    const notes = this.optionalStageNotes(opInfo);
    this.root.append(main, ...notes);
    if (advanced.childElementCount) {
      this.root.append(h("details", { class: "advanced" }, h("summary", {}, "Advanced"), advanced));
    }
    if (!names.length) this.root.append(h("p", { class: "hint" }, "This operation has no settings."));
    this.syncQuality();
    if (this.preview) this.preview.draw();
  }

  changed() {
    this.syncQuality();
    if (this.preview) this.preview.draw();
    this.onChange();
  }

  // Stages a request may need that are not installed (a prompt-only remove-object
  // needs CLIPSeg, a scene only a diffusion model draws needs SDXL): say so up front.
  optionalStageNotes(opInfo) {
    if (!opInfo) return [];
    return (opInfo.stages || [])
      .filter((s) => !s.required && !s.deployed)
      .map((s) => {
        const hint = (s.engines || []).map((e) => e.install).filter(Boolean).join(" ");
        return h("p", { class: "notice" }, h("strong", {}, `${label(s.stage)} is not installed. `),
          s.note ? `${s.note} ` : "", hint ? h("code", {}, hint) : "");
      });
  }

  field(name, prop, control, { describedBy } = {}) {
    return h("div", { class: "field", dataset: { field: name } }, control, describe(prop, describedBy));
  }

  genericControl(name, prop, required) {
    const id = uid(`f-${name}`);
    const hintId = `${id}-hint`;
    const common = { id, name, "aria-describedby": prop.description ? hintId : undefined, required };
    let input;
    const choices = prop.enum || CHOICES[name];
    if (choices) {
      input = h("select", common,
        prop.nullable || (!required && prop.default === undefined) ? h("option", { value: "" }, "(server default)") : null,
        choices.map((v) => h("option", { value: String(v), selected: v === prop.default }, String(v))));
      this.readers.set(name, () => {
        if (input.value === "") return undefined;
        return prop.type === "integer" ? Number(input.value) : input.value;
      });
    } else if (prop.type === "boolean") {
      input = h("input", { ...common, type: "checkbox", checked: prop.default === true });
      this.readers.set(name, () => input.checked);
      return h("div", { class: "field check", dataset: { field: name } },
        input, h("label", { for: id }, fieldLabel(name)), describe(prop, hintId));
    } else if (prop.type === "integer" || prop.type === "number") {
      const { min, max, step } = numberRange(prop);
      const ranged = min !== undefined && max !== undefined && !prop.nullable && max - min <= 1000;
      input = h("input", {
        ...common, type: ranged ? "range" : "number", min, max, step,
        value: prop.default ?? "", placeholder: prop.nullable ? "optional" : undefined,
      });
      this.readers.set(name, () => (input.value === "" || input.disabled ? undefined : Number(input.value)));
      if (ranged) {
        const out = h("output", { for: id, class: "value" }, String(input.value));
        input.addEventListener("input", () => { out.textContent = input.value; });
        return this.field(name, prop, [h("div", { class: "label-row" }, h("label", { for: id }, fieldLabel(name)), out), input],
          { describedBy: hintId });
      }
    } else {
      const long = /prompt/.test(name);
      input = h(long ? "textarea" : "input", {
        ...common, type: long ? undefined : "text", maxlength: prop.maxLength, rows: long ? 2 : undefined,
        placeholder: prop.nullable ? "optional" : undefined,
      });
      if (!long && prop.default !== undefined) input.value = prop.default;
      this.readers.set(name, () => (input.value.trim() === "" ? undefined : input.value.trim()));
    }
    return this.field(name, prop, [h("label", { for: id }, fieldLabel(name)), input], { describedBy: hintId });
  }

  // A photo the JSON body carries as base64 (try-on): read when picked, sent bare
  // (without the data: prefix), the way PixelAPI's clients send it.
  photoControl(name, prop, required) {
    const id = uid(`f-${name}`);
    const hintId = `${id}-hint`;
    const preview = h("div", { class: "photo-preview" });
    const input = h("input", {
      id, name, type: "file", accept: "image/jpeg,image/png,image/webp", required,
      "aria-describedby": prop.description ? hintId : undefined,
    });
    input.addEventListener("change", async () => {
      const old = this.photos.get(name);
      if (old) URL.revokeObjectURL(old.src);
      this.photos.delete(name);
      preview.replaceChildren();
      const file = input.files[0];
      if (file) {
        const dataUrl = await new Promise((resolve, reject) => {
          const reader = new FileReader();
          reader.onload = () => resolve(reader.result);
          reader.onerror = () => reject(reader.error);
          reader.readAsDataURL(file);
        });
        const src = URL.createObjectURL(file);
        this.photos.set(name, { name: file.name, src, base64: String(dataUrl).split(",", 2)[1] || "" });
        preview.append(h("img", { src, alt: `${fieldLabel(name)}: ${file.name}` }));
      }
      this.onChange();
    });
    this.readers.set(name, () => this.photos.get(name)?.base64);
    return this.field(name, prop, [h("label", { for: id }, fieldLabel(name)), input, preview], { describedBy: hintId });
  }

  // The photo fields still to pick (their labels), for the run button's note.
  missingPhotos(schema) {
    return schema.photoFields.filter((n) => schema.required.has(n) && !this.photos.has(n)).map(fieldLabel);
  }

  presetControl(prop, presets) {
    const group = uid("preset");
    const custom = { name: "custom", description: "Your own scene: describe it in the background prompt.", custom: true };
    const tiles = [...presets, custom].map((p) => {
      const id = uid("preset-opt");
      const none = () => h("span", { class: "thumb-none", "aria-hidden": "true" }, p.custom ? "Aa" : "?");
      let img = none();
      if (!p.custom) {
        // Thumbnails ship for the compositor's presets; one the server added later shows "?".
        img = h("img", { src: `/studio/presets/${encodeURIComponent(p.name)}.webp`, alt: "", width: 80, height: 80 });
        img.addEventListener("error", () => img.replaceWith(none()));
      }
      return h("div", { class: "preset" },
        h("input", { type: "radio", name: group, id, value: p.name, checked: p.name === (prop.default || "white-studio"), class: "visually-hidden" }),
        h("label", { for: id, title: p.description }, img, h("span", {}, p.name)));
    });
    this.readers.set("preset", () => this.root.querySelector(`input[name="${group}"]:checked`)?.value);
    return h("fieldset", { class: "field presets", dataset: { field: "preset" } },
      h("legend", {}, "Background preset"), h("div", { class: "preset-grid" }, tiles),
      describe(prop, uid("hint")));
  }

  canvasControl() {
    const id = uid("canvas");
    const select = h("select", { id, name: "aspect_ratio" },
      h("option", { value: "" }, "Same as the photo"),
      ASPECTS.map((a) => h("option", { value: a }, a)),
      h("option", { value: "size" }, "Exact size (pixels)…"));
    const w = h("input", { type: "number", id: `${id}-w`, min: 16, max: MAX_SIDE, step: 1, value: 2048, name: "output_width" });
    const hgt = h("input", { type: "number", id: `${id}-h`, min: 16, max: MAX_SIDE, step: 1, value: 2048, name: "output_height" });
    const size = h("div", { class: "row size", hidden: true },
      h("label", { for: w.id }, "Width"), w, h("label", { for: hgt.id }, "Height"), hgt);
    select.addEventListener("change", () => { size.hidden = select.value !== "size"; });
    this.readers.set("aspect_ratio", () => (select.value && select.value !== "size" ? select.value : undefined));
    this.readers.set("output_size", () => (select.value === "size" ? `${w.value}x${hgt.value}` : undefined));
    this.canvasAspect = () => {
      if (select.value === "size") return Number(w.value) / Number(hgt.value) || 1;
      if (select.value) { const [a, b] = select.value.split(":").map(Number); return a / b; }
      return null; // the photo's
    };
    return h("div", { class: "field", dataset: { field: "aspect_ratio" } },
      h("label", { for: id }, "Canvas (aspect ratio or size)"), select, size,
      h("p", { class: "hint" }, `Default: the photo's aspect. Exact sizes are 16-${MAX_SIDE} px a side.`));
  }

  syncQuality() {
    const format = this.root.querySelector('[name="output_format"]');
    const quality = this.root.querySelector('[name="image_quality"]');
    if (format && quality) quality.disabled = format.value === "png";
  }

  value(name) {
    const read = this.readers.get(name);
    return read ? read() : undefined;
  }

  values() {
    const out = {};
    for (const [name, read] of this.readers) {
      const v = read();
      if (v !== undefined) out[name] = v;
    }
    return out;
  }

  // Point at the field an API error names.
  markInvalid(field) {
    for (const el of this.root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!field) return;
    const el = this.root.querySelector(`[name="${CSS.escape(field)}"]`);
    if (el) el.setAttribute("aria-invalid", "true");
  }
}
