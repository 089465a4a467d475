// The parity reference for services/models/rrdn.py: runs an UpscalerJS ESRGAN layers
// model (model.json + shards in MODEL_DIR) with the pure-JavaScript TensorFlow.js CPU
// backend, registering the package's two custom layers the way its dist/ code defines
// them (MultiplyBeta: x 0.2; PixelShuffle<s>x: tf.depthToSpace NHWC).
//
// usage: node tfjs_reference.js MODEL_DIR IN.f32 H W OUT.f32 [IN.f32 H W OUT.f32 ...]
// Inputs and outputs are raw little-endian float32 NHWC with N = 1, in [0, 1].
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

const [dir, ...jobs] = process.argv.slice(2);
const model = JSON.parse(fs.readFileSync(path.join(dir, 'model.json')));
const shuffle = model.modelTopology.model_config.config.layers.find(
  (l) => l.class_name.startsWith('PixelShuffle'));
const scale = parseInt(shuffle.config.scale, 10);

const input = (inputs) => (Array.isArray(inputs) ? inputs[0] : inputs);

class MultiplyBeta extends tf.layers.Layer {
  constructor() { super({}); this.beta = 0.2; }
  call(inputs) { return tf.mul(input(inputs), this.beta); }
  static get className() { return 'MultiplyBeta'; }
}

class PixelShuffle extends tf.layers.Layer {
  constructor() { super({}); this.scale = scale; }
  computeOutputShape(s) { return [s[0], s[1], s[2], 3]; }
  call(inputs) { return tf.depthToSpace(input(inputs), this.scale, 'NHWC'); }
  static get className() { return shuffle.class_name; }
}

tf.serialization.registerClass(MultiplyBeta);
tf.serialization.registerClass(PixelShuffle);

(async () => {
  await tf.setBackend('cpu');
  const specs = [];
  const buffers = [];
  for (const group of model.weightsManifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const net = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs: specs, weightData }));
  for (let k = 0; k < jobs.length; k += 4) {
    const [inFile, h, w, outFile] = jobs.slice(k, k + 4);
    const raw = fs.readFileSync(inFile);
    const x = tf.tensor4d(
      new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), [1, +h, +w, 3]);
    const y = net.predict(x);
    fs.writeFileSync(outFile, Buffer.from((await y.data()).buffer));
    console.log(JSON.stringify({ in: inFile, shape: y.shape }));
  }
})().catch((err) => { console.error(err); process.exit(1); });
