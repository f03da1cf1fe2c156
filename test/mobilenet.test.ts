// End to end on TensorFlow's own numbers: the TF-Slim MobileNet v1 0.25/128 frozen graph from
// ../shared/fixtures/tf-mobilenet, imported and run on the engine, against the 1001 pre-softmax
// logits ('MobilenetV1/Predictions/Reshape') that TF computed for each of the 60 training JPEGs
// (the bottleneck files written by TF-for-Poets-2's retrain.py), and the retrained 22-class head.
// Preprocessing is retrain.py's: decode_jpeg, resize_bilinear to 128x128 (TF1 legacy coordinates,
// float32 arithmetic), then (x - 127.5) * (1 / 127.5).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { type DecodedImage, decodeImage } from '../src/image/decode.ts';
import { legacyBilinearTaps } from '../src/image/preprocess.ts';
import { graphDefBuilder, importGraphDef } from '../src/import/graphdef.ts';
import { SHARED_DIR, hasShared, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

const DIR = join(SHARED_DIR, 'fixtures/tf-mobilenet');
const FROZEN = join(DIR, 'models/mobilenet_v1_0.25_128/frozen_graph.pb');
const RETRAINED = join(DIR, 'retrained_graph.pb');
const present = hasShared && existsSync(FROZEN) && existsSync(RETRAINED);
const LOGITS = 'MobilenetV1/Predictions/Reshape';
const SIZE = 128;
const PER = SIZE * SIZE * 3;

interface Row {
  split: string;
  cls: string;
  retrainedIndex: number;
  file: string;
  bottleneck: string;
}
function manifest(): Row[] {
  const [, ...lines] = readFileSync(join(DIR, 'manifest.csv'), 'utf8').trim().split('\n');
  return lines.map((l) => {
    const f = l.split(',');
    return { split: f[0], cls: f[1], retrainedIndex: Number(f[3]), file: f[6], bottleneck: f[9] };
  });
}

/** retrain.py's preprocessing, in float32 as TF computes it. */
function poetsPreprocess(img: DecodedImage): Float32Array {
  const fr = Math.fround;
  const ty = legacyBilinearTaps(img.height, SIZE);
  const tx = legacyBilinearTaps(img.width, SIZE);
  const inv = fr(1 / 127.5);
  const at = (y: number, x: number, c: number) => img.data[(y * img.width + x) * 3 + c];
  const out = new Float32Array(PER);
  for (let oy = 0; oy < SIZE; oy++)
    for (let ox = 0; ox < SIZE; ox++)
      for (let c = 0; c < 3; c++) {
        const [y0, y1, dy] = [ty.lo[oy], ty.hi[oy], ty.lerp[oy]];
        const [x0, x1, dx] = [tx.lo[ox], tx.hi[ox], tx.lerp[ox]];
        const top = fr(at(y0, x0, c) + fr(fr(at(y0, x1, c) - at(y0, x0, c)) * dx));
        const bottom = fr(at(y1, x0, c) + fr(fr(at(y1, x1, c) - at(y1, x0, c)) * dx));
        const v = fr(top + fr(fr(bottom - top) * dy));
        out[(oy * SIZE + ox) * 3 + c] = fr(fr(v - 127.5) * inv);
      }
  return out;
}

type Decoder = (bytes: Uint8Array, file: string) => DecodedImage;

function batchOf(rows: Row[], decode: Decoder): Float32Array {
  const x = new Float32Array(rows.length * PER);
  rows.forEach((r, i) => x.set(poetsPreprocess(decode(readFileSync(join(DIR, r.file)), r.file)), i * PER));
  return x;
}

const argmax = (a: ArrayLike<number>, from: number, n: number) => {
  let best = 0;
  for (let k = 1; k < n; k++) if (a[from + k] > a[from + best]) best = k;
  return best;
};

interface Agreement {
  maxAbs: number;
  worstFile: string;
  top1: number;
}
function compareLogits(rows: Row[], logits: Float32Array): Agreement {
  let maxAbs = 0;
  let worstFile = '';
  let top1 = 0;
  rows.forEach((r, i) => {
    const tf = readFileSync(join(DIR, r.bottleneck), 'utf8').split(',').map(Number);
    expect(tf.length, r.bottleneck).toBe(1001);
    for (let k = 0; k < 1001; k++) {
      const d = Math.abs(logits[i * 1001 + k] - tf[k]);
      if (d > maxAbs) [maxAbs, worstFile] = [d, r.file];
    }
    if (argmax(logits, i * 1001, 1001) === argmax(tf, 0, 1001)) top1++;
  });
  return { maxAbs, worstFile, top1 };
}

if (!present) it.skip(sharedMissingMessage('the MobileNet end-to-end check'), () => {});

describe.skipIf(!present)('MobileNet v1 0.25/128 frozen graph vs TensorFlow (60 training images)', () => {
  const train = present ? manifest().filter((r) => r.split === 'train') : [];

  it('imports: 555 TF nodes -> conv + batchnorm + relu6 per layer, TF parameter names', () => {
    const g = importGraphDef(FROZEN, { outputs: [LOGITS] });
    expect(g.inputs).toEqual([{ name: 'input', shape: [1, 128, 128, 3] }]);
    expect(g.nodes.filter((n) => n.op === 'conv2d').length).toBe(28);
    expect(g.nodes.filter((n) => n.op === 'batchnorm').length).toBe(27);
    expect(g.param('MobilenetV1/Conv2d_0/weights').shape).toEqual([3, 3, 3, 8]);
    expect(g.param('MobilenetV1/Conv2d_13_depthwise/depthwise_weights').shape).toEqual([3, 3, 1, 256]);
    expect(g.param('MobilenetV1/Conv2d_5_pointwise/BatchNorm/moving_variance').trainable).toBe(false);
    expect(g.shapeOf(LOGITS)).toEqual([1, 1001]);
  });

  // jpeg-js decodes with an accurate IDCT and its own chroma upsampling; TF uses libjpeg's
  // integer fast IDCT (JDCT_IFAST) and fancy upsampling, so logits differ by up to ~1.4 here
  // (README: ~0.8 for ISLOW alone). Top-1 agrees on 56 of the 60 images.
  it('with jpeg-js decoding: logits within 2.0 of TF, top-1 agreement on at least 55/60', async () => {
    const rt = await getRuntime();
    const model = new Model(rt, graphDefBuilder(FROZEN, { outputs: [LOGITS] }));
    const logits = (await model.predict(batchOf(train, decodeImage), { outputs: [LOGITS] }))[LOGITS];
    const a = compareLogits(train, logits);
    console.log(`MobileNet vs TF, jpeg-js decoding: max |logit diff| ${a.maxAbs.toFixed(4)} (${a.worstFile}), top-1 ${a.top1}/60`);
    expect(a.maxAbs).toBeLessThan(2.0);
    expect(a.top1).toBeGreaterThanOrEqual(55);
    model.dispose();
  }, 300_000);
});
