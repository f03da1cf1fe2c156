// Records TensorFlow.js's own outputs of the TF.js Inception v3 fixture (../shared/fixtures/
// tfjs-inception-v3, a Keras InceptionV3 with uint8-quantized weights) on real ISIC photographs:
// `tf.loadLayersModel` on the same model.json and shards (pure-JS CPU backend), fed the same
// preprocessed pixels the engine gets (readImage + preprocessForEval at 299x299, no crop, [-1, 1]).
// test/tfjs-model.test.ts compares the engine's flatten_1 features and probabilities with these.
//   node --import tsx scripts/tfjs-reference.ts [--out test/fixtures/tfjs-inception-v3-reference.json]
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readImage } from '../src/image/decode.ts';
import { preprocessForEval } from '../src/image/preprocess.ts';

const SHARED = resolve(import.meta.dirname, '../../shared/fixtures');
const MODEL = join(SHARED, 'tfjs-inception-v3/model.json');
/** One photograph of each of four diagnoses (ISIC Test set). */
export const REFERENCE_IMAGES = [
  'isic-skin/Test/melanoma/ISIC_0000002.jpg',
  'isic-skin/Test/nevus/ISIC_0000000.jpg',
  'isic-skin/Test/basal cell carcinoma/ISIC_0024331.jpg',
  'isic-skin/Test/dermatofibroma/ISIC_0001114.jpg',
];

async function main(): Promise<void> {
  const outArg = process.argv.indexOf('--out');
  const out = outArg > 0 ? process.argv[outArg + 1] : resolve(import.meta.dirname, '../test/fixtures/tfjs-inception-v3-reference.json');
  await tf.setBackend('cpu');
  const json = JSON.parse(readFileSync(MODEL, 'utf8'));
  const specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  const shards = json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => readFileSync(join(dirname(MODEL), p))));
  const bytes = Buffer.concat(shards);
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));
  const probe = tf.model({ inputs: model.inputs, outputs: [model.getLayer('flatten_1').output as tf.SymbolicTensor, model.outputs[0]] });
  const images = [];
  for (const rel of REFERENCE_IMAGES) {
    const pixels = preprocessForEval(readImage(join(SHARED, rel)), 299, { centralFraction: 1 });
    const t0 = Date.now();
    const [flat, probs] = probe.predict(tf.tensor4d(pixels, [1, 299, 299, 3])) as tf.Tensor[];
    const features = Array.from(await flat.data());
    const probabilities = Array.from(await probs.data());
    console.log(`${rel}: ${Date.now() - t0} ms, probabilities ${probabilities.map((p) => p.toFixed(4)).join(' ')}`);
    const inputSum = pixels.reduce((s, v) => s + v, 0);
    images.push({ image: rel, inputSum, features, probabilities });
  }
  const record = {
    what: 'TensorFlow.js outputs of ../shared/fixtures/tfjs-inception-v3 (tf.loadLayersModel, cpu backend)',
    tfjs: tf.version.tfjs,
    preprocessing: 'readImage + preprocessForEval(299, centralFraction 1): [-1, 1]',
    outputs: { features: 'flatten_1', probabilities: 'dense_3' },
    images,
  };
  writeFileSync(`${out}.tmp`, `${JSON.stringify(record)}\n`);
  renameSync(`${out}.tmp`, out);
  console.log(`wrote ${out}`);
}

await main();
