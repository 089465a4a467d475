// The public API, as the studio uses it. Every failure becomes an ApiError with
// the API's own code, message and guidance (API.md's error shape).

const KEY_STORAGE = "lightbox.apiKey";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.code = detail.error || "error";
    this.guidance = detail.guidance || "";
    this.field = detail.field || null;
  }
}

async function errorOf(response) {
  let detail = {};
  try {
    const body = await response.json();
    if (body && typeof body.detail === "object" && body.detail) detail = body.detail;
  } catch {
    // Not JSON (a proxy's page): the status line is all there is.
  }
  if (!detail.message) detail.message = `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(response.status, detail);
}

export class Api {
  constructor() {
    this.key = localStorage.getItem(KEY_STORAGE) || "";
  }

  setKey(key) {
    this.key = key.trim();
    if (this.key) localStorage.setItem(KEY_STORAGE, this.key);
    else localStorage.removeItem(KEY_STORAGE);
  }

  async request(path, { method = "GET", body, headers = {}, auth = true } = {}) {
    const h = { ...headers };
    if (auth) h.Authorization = `Bearer ${this.key}`;
    let response;
    try {
      response = await fetch(path, { method, body, headers: h });
    } catch {
      throw new ApiError(0, {
        error: "network_error",
        message: "The server could not be reached.",
        guidance: "Check that the Lightbox stack is running, then retry.",
      });
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  models() { return this.request("/v1/models"); }
  balance() { return this.request("/v1/account/balance"); }
  openapi() { return this.request("/openapi.json", { auth: false }); }
  job(id) { return this.request(`/v1/image/${encodeURIComponent(id)}`); }
  // Each media operation is polled where PixelAPI's clients poll it (docs/media.md).
  mediaJob(operation, id) {
    const q = encodeURIComponent(id);
    if (operation === "video-generate") return this.request(`/v1/video/${q}`);
    if (operation === "virtual-tryon") return this.request(`/v1/virtual-tryon/jobs/${q}`);
    return this.job(id);
  }

  // Audio, video and try-on: JSON to the operation's own endpoint.
  submitJson(path, body) {
    return this.request(path, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    });
  }
  usage(cursor) {
    const q = new URLSearchParams({ limit: "20" });
    if (cursor) q.set("cursor", cursor);
    return this.request(`/v1/account/usage?${q}`);
  }

  async devKey() {
    try {
      const r = await fetch("/studio/dev-key", { cache: "no-store" });
      return r.ok ? (await r.json()).key : null;
    } catch {
      return null;
    }
  }

  // One submit: a file upload (multipart) or an image URL; fields are strings.
  submit(operation, { file, url, mask, fields }) {
    const path = `/v1/image/${operation}`;
    if (!file && !mask) {
      const body = { ...fields };
      if (url) body.image_url = url;
      return this.request(path, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" },
      });
    }
    const form = new FormData();
    if (file) form.append("image", file, file.name || "image");
    if (url) form.append("image_url", url);
    if (mask) form.append("mask", mask, "mask.png");
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    return this.request(path, { method: "POST", body: form });
  }
}
