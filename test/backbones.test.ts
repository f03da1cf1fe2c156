// Pretrained backbones: the committed ImageNet layers of the Keras InceptionV3 against TF.js running
// the package's own files (the independent reference), the Keras -> TF-Slim mapping's refusals,
// quantized model tensors, the range options of the Inception v3 builder, the data sets' readers
// and splits, half-precision feature caching, and the evaluation figures.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadKerasTrunk } from '../bench/tfjs_keras.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { readImage } from '../src/image/decode.ts';
import { preprocessImage } from '../src/image/preprocess.ts';
import { dequantize, mapKerasInceptionV3, readTfjsLayersModel } from '../src/import/keras-inception-v3.ts';
import { openModel } from '../src/import/load-model.ts';
import { KERAS_IMAGENET_FILE, backboneFeatures, backboneModel, openBackbone } from '../src/train/backbones.ts';
import { cachedFeatures, fromHalf, toHalf } from '../src/train/feature-cache.ts';
import { DIHEDRAL, ISIC_MALIGNANT, dihedral, isicSplit, readRetinaMnist } from '../src/train/medical-data.ts';
import { averagePool, concatRows, standardise } from '../src/train/feature-training.ts';
import { operatingPoint, sanityWarnings } from '../src/train/transfer-eval.ts';
import { weightsIdentity } from '../src/train/transfer-features.ts';
import { SHARED_DIR, fixturesPresent } from './helpers.ts';

afterAll(closeRuntime);

const KERAS_DIR = join(SHARED_DIR, 'fixtures/tfjs-inception-v3');
const ISIC = join(SHARED_DIR, 'fixtures/isic-skin');
const RETINA = join(SHARED_DIR, 'fixtures/retinamnist/retinamnist.npz');
// Under CI a missing fixture fails the run (fixturesPresent); elsewhere the block skips.
const haveKeras = fixturesPresent([join(KERAS_DIR, 'model.json')]);
const haveIsic = fixturesPresent([join(ISIC, 'Test')]);
const haveRetina = fixturesPresent([RETINA]);

describe('Inception v3 ranges (slim final_endpoint, input at an end point)', () => {
  it('builds the base through Mixed_6c and the top from a cached map with the same names', () => {
    const full = inceptionV3({ numClasses: 1001, inputSize: 139 });
    const base = inceptionV3({ numClasses: 0, inputSize: 139, finalEndpoint: 'Mixed_6c', globalPool: true });
    expect([...base.endPoints.keys()].at(-2)).toBe('Mixed_6c');
    expect(base.shapeOf(base.outputs[0])).toEqual([1, 1, 1, 768]);
    const top = inceptionV3({ numClasses: 3, inputSize: 139, fromEndpoint: 'Mixed_6b', finalEndpoint: 'Mixed_6c', globalPool: true, batch: 2 });
    expect(top.inputs[0].shape).toEqual([2, ...full.shapeOf(full.endPoint('Mixed_6b')).slice(1)]);
    for (const name of top.params.keys()) {
      if (!name.includes('/Logits/')) {
        expect(name).toContain('/Mixed_6c/');
        expect(full.params.get(name)?.shape).toEqual(top.params.get(name)!.shape);
      }
    }
    expect(() => inceptionV3({ finalEndpoint: 'Mixed_5b', fromEndpoint: 'Mixed_6a' })).toThrow(/comes before/);
    expect(() => inceptionV3({ finalEndpoint: 'Mixed_9z' })).toThrow(/not an end point/);
    expect(() => inceptionV3({ finalEndpoint: 'Mixed_6c', auxLogits: true })).toThrow(/aux head reads Mixed_6e/);
  });
});

describe.skipIf(!haveKeras)('Keras InceptionV3 ImageNet layers', () => {

  it('maps the 50 frozen convolutions and refuses the re-tuned ones', () => {
    const m = readTfjsLayersModel(KERAS_DIR);
    const map = mapKerasInceptionV3(m, { finalEndpoint: 'Mixed_6c', frozenOnly: true });
    expect(map.size).toBe(200);
    expect(map.get('InceptionV3/Conv2d_1a_3x3/weights')!.name).toBe('conv2d_1/kernel');
    expect(map.get('InceptionV3/Mixed_6c/Branch_3/Conv2d_0b_1x1/BatchNorm/moving_variance')!.name).toBe('batch_normalization_50/moving_variance');
    expect(() => mapKerasInceptionV3(m, { finalEndpoint: 'Mixed_6d', frozenOnly: true })).toThrow(/conv2d_51.*trainable/);
  });

  it('the committed file holds those weights, uint8 as published, and loads as an engine model', () => {
    const m = readTfjsLayersModel(KERAS_DIR);
    const w = m.weights.get('conv2d_7/kernel')!;
    expect(w.quantized).toBeDefined();
    expect(dequantize([0, 255], w.quantized!.min, w.quantized!.scale)[1]).toBeCloseTo(w.quantized!.min + 255 * w.quantized!.scale, 4);
    const opened = openModel(KERAS_IMAGENET_FILE);
    const mapped = mapKerasInceptionV3(m, { finalEndpoint: 'Mixed_6c', frozenOnly: true });
    let mismatches = 0;
    for (const [slim, kw] of mapped) {
      const d = opened.graph.param(slim).data;
      for (let i = 0; i < d.length; i++) if (d[i] !== kw.data[i]) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it("agrees with the TF.js layers importer's structural recognition of the same model (an independent mapping)", () => {
    const theirs = openModel(join(KERAS_DIR, 'model.json'));
    const mine = openModel(KERAS_IMAGENET_FILE);
    let worst = 0;
    for (const p of mine.graph.params.values()) {
      const q = theirs.graph.param(p.name);
      for (let i = 0; i < p.size; i++) worst = Math.max(worst, Math.abs(p.data[i] - q.data[i]));
    }
    expect(worst).toBeLessThan(1e-5); // both dequantize min + scale * q; float32 rounding apart
  }, 120_000);

  it('Mixed_6c of real skin images matches TF.js running the Keras model', async () => {
    const size = 107;
    const folders = ['melanoma', 'nevus'].map((d) => join(ISIC, 'Test', d));
    expect(fixturesPresent(folders), `ISIC Test folders ${folders.join(', ')}`).toBe(true);
    const files = folders.map((d) => join(d, readdirSync(d).sort()[0]));
    const bb = openBackbone('keras-inception-v3');
    const pre = bb.preprocessing(size);
    const per = size * size * 3;
    const x = new Float32Array(2 * per);
    files.forEach((f, i) => x.set(preprocessImage(readImage(f), pre), i * per));
    const ours = await (await backboneFeatures(bb, size)).predict(x, { outputs: ['Mixed_6c'] });
    const trunk = await loadKerasTrunk(KERAS_DIR, { layer: 'mixed5', inputSize: size, backend: 'cpu' });
    const ref = await trunk.map(x, 2);
    expect(ref.shape).toEqual([2, 5, 5, 768]);
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.data.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ours.Mixed_6c[i] - ref.data[i]));
      maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
    }
    expect(maxRef).toBeGreaterThan(1);
    expect(maxDiff).toBeLessThan(1e-3 * maxRef);
  }, 240_000);

  it('a backbone model with a new head keeps the pretrained values and re-initialises blocks above', async () => {
    const bb = openBackbone('keras-inception-v3');
    const tm = await backboneModel(bb, { head: 2, inputSize: 107, finalEndpoint: 'Mixed_6d' });
    expect(tm.reinitialised.every((n) => n.includes('/Mixed_6d/'))).toBe(true);
    expect(tm.reinitialised.length).toBeGreaterThan(0);
    expect(tm.model.graph.param('InceptionV3/Mixed_6c/Branch_0/Conv2d_0a_1x1/weights').data).toBe(bb.inception!.params.get('InceptionV3/Mixed_6c/Branch_0/Conv2d_0a_1x1/weights'));
    expect(tm.model.shapeOf('Predictions')).toEqual([1, 2]);
  });
});

describe('data sets and splits', () => {
  it.runIf(haveRetina)('reads RetinaMNIST with its official split', () => {
    const r = readRetinaMnist(RETINA);
    expect([r.train.count, r.val.count, r.test.count]).toEqual([1080, 120, 400]);
    const counts = [0, 0, 0, 0, 0];
    for (const l of r.train.labels) counts[l]++;
    expect(counts).toEqual([486, 128, 206, 194, 66]); // the README's counts
  });

  it.runIf(haveIsic)('ISIC held-out split: Test plus a stratified 20% of Train, the same every time', () => {
    const a = isicSplit(ISIC);
    const b = isicSplit(ISIC);
    expect(a.heldout.map((s) => s.path)).toEqual(b.heldout.map((s) => s.path));
    expect(a.heldoutFromTest.filter(Boolean).length).toBe(118);
    const all = [...a.train, ...a.validation, ...a.heldout].map((s) => s.path);
    expect(new Set(all).size).toBe(2359);
    const melanoma = a.classes.indexOf('melanoma');
    const fromTrain = a.heldout.filter((s, i) => !a.heldoutFromTest[i] && s.label === melanoma).length;
    expect(fromTrain).toBe(Math.round(438 * 0.2));
    expect(a.taxonomy.path('melanoma')).toContain('malignant');
    expect(ISIC_MALIGNANT.every((c) => a.classes.includes(c))).toBe(true);
  });
});

describe('feature cache and figures', () => {
  it('float16 round trip (rounding to nearest even, subnormals, overflow)', () => {
    for (const v of [0, 1, -2.5, 65504, 6.1e-5, 3e-7, 0.1, 1234.567]) expect(Math.abs(fromHalf(toHalf(v)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25);
    expect(fromHalf(toHalf(1e6))).toBe(Infinity);
    expect(toHalf(1 + 2 ** -11)).toBe(toHalf(1)); // a tie rounds to even
  });

  it('computes missing chunks once and reads them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-fc-'));
    try {
      let calls = 0;
      const compute = async (start: number, n: number) => {
        calls++;
        return { a: Float32Array.from({ length: n * 2 }, (_, i) => start * 2 + i + 0.25) };
      };
      const spec = { identity: 'x', endPoints: { a: [2] }, count: 5, chunk: 2 };
      const first = await cachedFeatures(dir, spec, compute);
      expect(calls).toBe(3);
      const again = await cachedFeatures(dir, spec, compute);
      expect(calls).toBe(3);
      expect(again.a).toEqual(first.a);
      expect(first.a[9]).toBe(9.25);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cache key names the weights by content, not by path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'incept-wid-'));
    try {
      const moved = join(dir, 'elsewhere.safetensors');
      copyFileSync(KERAS_IMAGENET_FILE, moved);
      const here = weightsIdentity(KERAS_IMAGENET_FILE);
      expect(weightsIdentity(moved)).toEqual(here);
      expect(here.sha256).toMatch(/^[0-9a-f]{64}$/);
      const other = join(dir, 'other.safetensors');
      writeFileSync(other, 'not the same bytes');
      expect(weightsIdentity(other).sha256).not.toBe(here.sha256);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('dihedral variants: quarter turns clockwise, flips, 8 distinct permutations', () => {
    // Two 3x3 images whose red channel numbers the pixels (second image offset by 9).
    const img = new Uint8Array(2 * 27);
    for (let i = 0; i < 18; i++) img[i * 3] = i;
    const red = (out: Uint8Array, image: number) => Array.from({ length: 9 }, (_, p) => out[image * 27 + p * 3]);
    expect(red(dihedral(img, 3, 1), 0)).toEqual([6, 3, 0, 7, 4, 1, 8, 5, 2]);
    expect(red(dihedral(img, 3, 2), 1)).toEqual([17, 16, 15, 14, 13, 12, 11, 10, 9]);
    expect(red(dihedral(img, 3, 4), 0)).toEqual([2, 1, 0, 5, 4, 3, 8, 7, 6]);
    const all = DIHEDRAL.map((_, k) => red(dihedral(img, 3, k), 0).join(','));
    expect(new Set(all).size).toBe(8);
    expect(() => dihedral(img, 4, 1)).toThrow(/dihedral/);
  });

  it('multi-layer features: average pool, rows side by side, standardised on the training rows only', () => {
    // 2 maps of 2x1 pixels, 2 channels.
    const maps = Float32Array.from([1, 10, 3, 20, 5, 30, 7, 40]);
    expect(Array.from(averagePool(maps, 2, 2))).toEqual([2, 15, 6, 35]);
    expect(Array.from(concatRows([Float32Array.from([1, 2]), Float32Array.from([3, 4, 5, 6])], 2))).toEqual([1, 3, 4, 2, 5, 6]);
    const z = standardise(Float32Array.from([0, 5, 2, 5, 100, 7]), 3, Int32Array.from([0, 1]));
    expect(Array.from(z.subarray(0, 4)).map((v) => Math.round(v * 1e3) / 1e3)).toEqual([-1, 0, 1, 0]);
    expect(z[4]).toBeCloseTo(99, 3); // row 2 is not a training row: scaled by the training rows' sd, not its own
  });

  it('operating point chosen on validation, measured on test', () => {
    const op = operatingPoint({ scores: [0.1, 0.2, 0.3, 0.4, 0.8, 0.9], labels: [0, 0, 1, 0, 1, 1] }, { scores: [0.25, 0.35, 0.5, 0.05], labels: [1, 1, 0, 0] }, 1);
    expect(op.threshold).toBe(0.3);
    expect(op.validation.sensitivity).toBe(1);
    expect(op.validation.specificity).toBeCloseTo(2 / 3, 12);
    expect(op.test).toEqual({ sensitivity: 0.5, specificity: 0.5 });
  });

  it('warns about one-class predictions and tiny validation sets', () => {
    const probs = new Float32Array(40).map((_, i) => (i % 2 === 0 ? 0.9 : 0.1));
    const w = sanityWarnings(probs, 20, ['benign', 'malignant'], 12, 3);
    expect(w[0]).toMatch(/predicts 'benign' for 20 of 20/);
    expect(w[1]).toMatch(/validation set has 12 images/);
    expect(sanityWarnings(Float32Array.from({ length: 40 }, (_, i) => ((i >> 1) % 2 === i % 2 ? 0.9 : 0.1)), 20, ['a', 'b'], 200, 80)).toEqual([]);
  });
});
