// Music and virtual try-on with Node's built-in fetch (Node 18+), the way PixelAPI's
// JavaScript examples are written: submit JSON, poll, save the result.
//
//   LIGHTBOX_BASE_URL=http://localhost:8080 LIGHTBOX_API_KEY=lb_live_... \
//     node examples/pixelapi_media.mjs audio "calm acoustic guitar" out.wav [seconds]
//   node examples/pixelapi_media.mjs tryon person.jpg garment.jpg upperbody out.png
import { readFile, writeFile } from "node:fs/promises";

const BASE = (process.env.LIGHTBOX_BASE_URL || "http://localhost:8080").replace(/\/$/, "");
const HEADERS = {
  Authorization: `Bearer ${process.env.LIGHTBOX_API_KEY}`,
  "Content-Type": "application/json",
};
const DONE = ["completed", "failed", "blocked", "canceled"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function submit(path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method: "POST",
    headers: HEADERS,
    body: JSON.stringify(body),
  });
  const job = await response.json();
  if (response.status !== 200 && response.status !== 202) {
    throw new Error(`submit failed: ${response.status} ${job.detail.error}: ${job.detail.message}`);
  }
  console.log(`submitted ${job.generation_id ?? job.job_id} (${job.credits_used} credits)`);
  return job;
}

async function poll(path) {
  for (;;) {
    const job = await (await fetch(`${BASE}${path}`, { headers: HEADERS })).json();
    if (DONE.includes(job.status)) return job;
    await sleep(1000);
  }
}

async function audio(prompt, target, seconds = "15") {
  const queued = await submit("/v1/audio/generate", { prompt, duration: Number(seconds) });
  const job = await poll(`/v1/image/${queued.generation_id}`);
  if (job.status !== "completed") throw new Error(`job ${job.status}: ${JSON.stringify(job.error)}`);
  const wav = await fetch(job.output_url); // a signed link: no key needed
  await writeFile(target, Buffer.from(await wav.arrayBuffer()));
  console.log(`completed: ${job.format} -> ${target}`);
}

async function tryon(person, garment, category, target) {
  const b64 = async (path) => (await readFile(path)).toString("base64");
  const queued = await submit("/v1/virtual-tryon", {
    person_image: await b64(person),
    garment_image: await b64(garment),
    category,
  });
  const job = await poll(`/v1/virtual-tryon/jobs/${queued.job_id}`);
  if (job.status !== "completed") throw new Error(`job ${job.status}: ${JSON.stringify(job.error)}`);
  await writeFile(target, Buffer.from(job.result_image_b64, "base64"));
  console.log(`completed in ${job.inference_time_ms} ms -> ${target}`);
}

const [command, ...args] = process.argv.slice(2);
const commands = { audio, tryon };
if (!commands[command]) {
  console.error("usage: pixelapi_media.mjs audio PROMPT OUT.wav [seconds] | tryon PERSON GARMENT CATEGORY OUT.png");
  process.exit(2);
}
commands[command](...args).catch((error) => {
  console.error(error.message);
  process.exit(1);
});
