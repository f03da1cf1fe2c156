// Saliency through the GPU autodiff, checked against float64 CPU computations on a thin network
// and a tiny one; what each method costs (gradient passes); Grad-CAM's default layer.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { batchPlan, disposeSaliency, gradCamLayer, saliency, saliencyRows, spatialLayers } from '../src/explain/saliency.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import type { Graph } from '../src/graph/ir.ts';
import { Model } from '../src/graph/model.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { loadModel, openModel } from '../src/import/load-model.ts';
import { nchwToNhwcHost } from '../src/kernels/transpose.ts';
import { Rng } from '../src/train/rng.ts';
import { SHARED_DIR, fixturesPresent, needsTitle, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const SIZE = 107; // Mixed_7c is 2x2 here, so Grad-CAM has a spatial map
const CLASSES = 4;

async function thinModel() {
  const model = await Model.inceptionV3({ inputSize: SIZE, depthMultiplier: 0.1, numClasses: CLASSES, auxLogits: false, seed: 41 });
  // Non-trivial moving statistics, so the folded batchnorm matters.
  for (const p of model.graph.params.values()) {
    if (p.name.endsWith('moving_variance')) p.data = randomArray(p.size, p.name.length, 0.5, 1.5);
  }
  return model;
}

describe('saliency on a thin Inception v3', () => {
  it('vanilla gradients of the class score and of the loss agree with float64 finite differences', async () => {
    const model = await thinModel();
    const image = randomArray(SIZE * SIZE * 3, 42);
    const logits = model.graph.endPoint('Logits');
    const logitsAt = (x: Float64Array) => evaluateReference(model.graph, { input: x }, [logits])[logits];
    const target = 2;
    const f = {
      score: (x: Float64Array) => logitsAt(x)[target],
      loss: (x: Float64Array) => {
        const z = logitsAt(x);
        const m = Math.max(...z);
        return m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[target];
      },
    };
    const base = Float64Array.from(image);
    const r = rng(43);
    for (const objective of ['score', 'loss'] as const) {
      const s = await saliency(model, image, { method: 'vanilla', target, objective });
      expect(s.map.length).toBe(SIZE * SIZE);
      const d = base.map(() => r() * 2 - 1);
      let analytic = 0;
      for (let i = 0; i < d.length; i++) analytic += s.raw[i] * d[i];
      const h = 1e-5;
      const fd = (f[objective](base.map((v, i) => v + h * d[i])) - f[objective](base.map((v, i) => v - h * d[i]))) / (2 * h);
      expect(Math.abs(analytic - fd), `${objective}: <grad, d> ${analytic} vs ${fd}`).toBeLessThan(1e-4 + 1e-2 * Math.abs(fd));
      expect(s.passes).toBe(1);
    }
    // No target: the top class and its logit come from the one pass's forward.
    const z = logitsAt(base);
    const top = await saliency(model, image, { method: 'vanilla' });
    expect(top.target).toBe(z.indexOf(Math.max(...z)));
    expect(Math.abs(top.score - z[top.target])).toBeLessThan(1e-4 + 1e-4 * Math.abs(z[top.target]));
    expect([top.passes, top.batch, top.allZero, top.warnings]).toEqual([1, 1, false, []]);
    disposeSaliency(model);
    model.dispose();
  }, 300_000);

  it('integrated gradients satisfy completeness ever more closely as steps grow', async () => {
    const model = await thinModel();
    const image = randomArray(SIZE * SIZE * 3, 44);
    const gaps: number[] = [];
    for (const steps of [4, 32]) {
      const s = await saliency(model, image, { method: 'ig', target: 1, steps, baseline: 'zeros' });
      const { sum, expected } = s.completeness!;
      gaps.push(Math.abs(sum - expected) / Math.abs(expected));
      // The image and the baseline ride along as rows: 4 + 2 rows in one pass; 34 in 5 passes of 7.
      expect([s.passes, s.batch]).toEqual(steps === 4 ? [1, 6] : [5, 7]);
    }
    // Stated tolerance: the attributions sum to f(x) - f(baseline) within 1% at 32 steps; more steps
    // do not do worse (up to float32 rounding: the random thin net is nearly linear along the path,
    // so even 4 steps are close).
    expect(gaps[1]).toBeLessThan(0.01);
    expect(gaps[1]).toBeLessThanOrEqual(gaps[0] + 1e-4);
    disposeSaliency(model);
    model.dispose();
  }, 300_000);

  it('Grad-CAM at Mixed_7c agrees with a CPU computation from the layer activations and gradients', async () => {
    const model = await thinModel();
    const image = randomArray(SIZE * SIZE * 3, 45);
    const target = 3;
    const s = await saliency(model, image, { method: 'gradcam', target }); // the default layer: Mixed_7c
    expect([s.layer, s.passes, s.allZero]).toEqual(['Mixed_7c', 1, false]);
    // On the CPU: A = Mixed_7c (2x2xC); the head is avg pool over the 2x2 map, then a 1x1 conv, so
    // d logit_t / d A[p, c] = W[c, t] / 4 at every position p, and alpha_c = W[c, t] / 4.
    const layer = model.graph.endPoint('Mixed_7c');
    const A = evaluateReference(model.graph, { input: image }, [layer])[layer];
    const W = model.graph.param('InceptionV3/Logits/Conv2d_1c_1x1/weights').data; // [1,1,C,K]
    const [, h, w, c] = model.shapeOf('Mixed_7c');
    expect([h, w]).toEqual([2, 2]);
    const cam = new Float64Array(h * w);
    for (let p = 0; p < h * w; p++) {
      let v = 0;
      for (let k = 0; k < c; k++) v += (W[k * CLASSES + target] / (h * w)) * A[p * c + k];
      cam[p] = Math.max(0, v);
    }
    for (let p = 0; p < h * w; p++) expect(Math.abs(s.raw[p] - cam[p])).toBeLessThan(1e-4 + 1e-3 * Math.abs(cam[p]));
    expect(s.map.length).toBe(SIZE * SIZE);
    disposeSaliency(model);
    model.dispose();
  }, 300_000);

  it('SmoothGrad averages gradients of noisy copies and is deterministic per seed', async () => {
    const model = await thinModel();
    const image = randomArray(SIZE * SIZE * 3, 46);
    const a = await saliency(model, image, { method: 'smoothgrad', target: 0, samples: 5, seed: 7 });
    const b = await saliency(model, image, { method: 'smoothgrad', target: 0, samples: 5, seed: 7 });
    const v = await saliency(model, image, { method: 'vanilla', target: 0 });
    expect(Array.from(a.map)).toEqual(Array.from(b.map));
    expect(Array.from(a.map)).not.toEqual(Array.from(v.map));
    expect(a.map.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
    expect([a.passes, a.batch]).toEqual([1, 6]); // the image (for the score) and 5 copies
    disposeSaliency(model);
    model.dispose();
  }, 300_000);
});

describe('what the methods cost', () => {
  it('batchPlan: the fewest passes of at most 8, then the smallest batch (one program, under a pass of padding)', () => {
    const plans = [1, 2, 8, 9, 26, 52, 17].map((rows) => [rows, batchPlan(rows)]);
    expect(plans).toEqual([
      [1, { batch: 1, passes: 1 }],
      [2, { batch: 2, passes: 1 }],
      [8, { batch: 8, passes: 1 }],
      [9, { batch: 5, passes: 2 }],
      [26, { batch: 7, passes: 4 }],
      [52, { batch: 8, passes: 7 }],
      [17, { batch: 6, passes: 3 }],
    ]);
    for (let rows = 1; rows <= 70; rows++) {
      const { batch, passes } = batchPlan(rows);
      expect(passes).toBe(Math.ceil(rows / 8));
      expect(batch * passes - rows).toBeLessThan(passes);
    }
    expect(batchPlan(5, 1)).toEqual({ batch: 1, passes: 5 });
    expect([saliencyRows('vanilla'), saliencyRows('gradcam'), saliencyRows('smoothgrad'), saliencyRows('ig'), saliencyRows('ig', { steps: 4 })]).toEqual([1, 1, 26, 52, 6]);
    expect(() => batchPlan(0)).toThrow(/cannot batch 0 rows/);
  });
});

// A tiny CNN whose float64 reference is fast: two branches (a 1x1 and a 3x3 conv) concatenated
// into the feature map Grad-CAM should pick, then a stride-2 conv, global mean and a 1x1 conv head.
const TINY = 12;
const TINY_CLASSES = 5;
function tinyGraph(batch: number): Graph {
  const b = new GraphBuilder('Tiny', { seed: 3 });
  const x = b.input('input', [batch, TINY, TINY, 3]);
  const logits = b.argScope({ batchNorm: false, padding: 'SAME' }, () => {
    const c = b.conv2d('Conv2d_1a_3x3', x, 6, 3, { stride: 2 });
    const branches = [b.conv2d('Branch_0', c, 4, 1), b.conv2d('Branch_1', c, 4, 3)];
    const mixed = b.concat(branches, 3, 'Mixed');
    const pooled = b.node('mean', 'GlobalPool', [mixed], { axes: [1, 2], keepDims: true });
    return b.squeeze('SpatialSqueeze', b.conv2d('Logits', pooled, TINY_CLASSES, 1, { activation: 'none' }), [1, 2]);
  });
  b.endPoint('Logits', logits);
  b.output(b.endPoint('Predictions', b.softmax('Predictions', logits)));
  return b.graph;
}

async function tinyModel(): Promise<Model> {
  const model = new Model(await getRuntime(), tinyGraph);
  for (const p of model.graph.params.values()) {
    if (p.name.endsWith('biases')) p.data = Float32Array.from(p.data, (_, i) => 0.05 * ((i % 3) - 1));
  }
  model.parametersChanged();
  return model;
}

describe('saliency on a tiny CNN (cost and float64 checks)', () => {
  const logitsAt = (g: Graph, x: ArrayLike<number>) => evaluateReference(g, { input: Float64Array.from(x) }, [g.endPoint('Logits')])[g.endPoint('Logits')];
  const lossAt = (z: Float64Array, t: number) => {
    const m = Math.max(...z);
    return m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[t];
  };

  it('SmoothGrad of 25 samples is 4 passes of 7 and equals the mean of float64 finite differences over the same copies', async () => {
    const model = await tinyModel();
    const image = randomArray(TINY * TINY * 3, 50);
    const s = await saliency(model, image, { method: 'smoothgrad', samples: 25, noise: 0.1, seed: 9 });
    expect([s.passes, s.batch]).toEqual([4, 7]);
    const z = logitsAt(model.graph, image);
    expect(s.target).toBe(z.indexOf(Math.max(...z)));
    expect(Math.abs(s.score - z[s.target])).toBeLessThan(1e-5);
    // The copies by SmoothGrad's definition: x + N(0, (0.1 * 2)^2) per value, drawn in order from Rng(seed).
    const r = new Rng(9);
    const copies = Array.from({ length: 25 }, () => image.map((v) => v + 0.2 * r.normal()));
    const d = randomArray(image.length, 52);
    const h = 1e-4;
    let fd = 0;
    for (const c of copies) {
      const plus = logitsAt(model.graph, c.map((v, i) => v + h * d[i]));
      const minus = logitsAt(model.graph, c.map((v, i) => v - h * d[i]));
      fd += (lossAt(plus, s.target) - lossAt(minus, s.target)) / (2 * h) / copies.length;
    }
    let analytic = 0;
    for (let i = 0; i < d.length; i++) analytic += s.raw[i] * d[i];
    expect(Math.abs(analytic - fd), `<smoothgrad, d> ${analytic} vs ${fd}`).toBeLessThan(1e-4 + 1e-3 * Math.abs(fd));
    disposeSaliency(model);
    model.dispose();
  }, 120_000);

  it('integrated gradients of 50 steps are 7 passes; f(x) - f(baseline) from the path ends matches float64', async () => {
    const model = await tinyModel();
    const image = randomArray(TINY * TINY * 3, 53);
    const s = await saliency(model, image, { method: 'ig', steps: 50, baseline: 'black', target: 4 });
    expect([s.passes, s.batch]).toEqual([7, 8]);
    const expected = logitsAt(model.graph, image)[4] - logitsAt(model.graph, new Float32Array(image.length).fill(-1))[4];
    expect(Math.abs(s.completeness!.expected - expected)).toBeLessThan(1e-5 + 1e-5 * Math.abs(expected));
    expect(Math.abs(s.completeness!.sum - expected)).toBeLessThan(0.01 * Math.abs(expected));
    disposeSaliency(model);
    model.dispose();
  }, 120_000);

  it('Grad-CAM: the default layer is the concatenated map, not a branch; an all-zero map is reported', async () => {
    const model = await tinyModel();
    const mixed = model.graph.nodes.find((n) => n.op === 'concat')!.output;
    const stem = ['Conv2D', 'BiasAdd', 'Relu'].map((n) => `Tiny/Conv2d_1a_3x3/${n}`);
    expect(spatialLayers(model.graph)).toEqual([...stem, mixed]); // the branches are not cuts
    const image = randomArray(TINY * TINY * 3, 54);
    const s = await saliency(model, image, { method: 'gradcam', target: 2 });
    expect([s.layer, s.passes]).toEqual([mixed, 1]);
    // Make every head weight of class 2 negative: the map is a ReLU of (negative weights x ReLU
    // activations), zero everywhere, and says so.
    const w = model.graph.param('Tiny/Logits/weights'); // [1, 1, 8, 5]
    w.data = Float32Array.from(w.data, (v, i) => (i % TINY_CLASSES === 2 ? -Math.abs(v) - 0.01 : v));
    model.parametersChanged();
    const zero = await saliency(model, image, { method: 'gradcam', target: 2 });
    expect(zero.map.every((v) => v === 0)).toBe(true);
    expect(zero.allZero).toBe(true);
    expect(zero.warnings).toEqual([expect.stringMatching(new RegExp(`^the Grad-CAM map is all zeros at layer ${mixed}: `))]);
    await expect(saliency(model, image, { method: 'gradcam', layer: 'Mixed_9z' })).rejects.toThrow(
      `saliency: the model has no layer 'Mixed_9z' (spatial layers nearest the logits: ${[mixed, ...stem.reverse()].join(', ')}; or any value name)`,
    );
    await expect(saliency(model, image, { method: 'gradcam', layer: 'Logits' })).rejects.toThrow(/Grad-CAM needs a spatial layer \(\[N, H, W, C\]\) larger than 1x1; 'Logits' is \[1,5\]/);
    disposeSaliency(model);
    model.dispose();
  }, 120_000);
});

describe("Grad-CAM's default layer on other models", () => {
  it('Inception v3: Mixed_7c at 299x299, Mixed_6e at 75x75 (Mixed_7 is 1x1 there)', () => {
    expect(gradCamLayer(inceptionV3({ inputSize: 299, depthMultiplier: 0.1, auxLogits: false }))).toBe('Mixed_7c');
    expect(gradCamLayer(inceptionV3({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false }))).toBe('Mixed_6e');
  });

  const files = ['fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb', 'conformance/torchvision-onnx/squeezenet1_1/model.onnx'].map((f) => join(SHARED_DIR, f));
  it.skipIf(!fixturesPresent(files))(needsTitle('TF MobileNet (frozen graph) and torchvision SqueezeNet (ONNX): the last feature map before pooling', files), () => {
    const mobilenet = openModel(files[0]).graph;
    const squeezenet = openModel(files[1]).graph;
    expect(gradCamLayer(mobilenet)).toBe('MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6');
    expect(mobilenet.shapeOf(gradCamLayer(mobilenet))).toEqual([1, 4, 4, 256]);
    const layer = gradCamLayer(squeezenet);
    expect(squeezenet.shapeOf(layer)).toEqual([1, 13, 13, 1000]); // relu(conv10), before the global pool
    expect(squeezenet.producer(layer)!.op).toBe('relu');
  });

  const squeezenet = join(SHARED_DIR, 'conformance/torchvision-onnx/squeezenet1_1');
  it.skipIf(!fixturesPresent([squeezenet]))(needsTitle("SqueezeNet (ONNX) runs Grad-CAM at its default layer in one pass; class and score are PyTorch's", [squeezenet]), async () => {
    const f32 = (file: string) => new Float32Array(Uint8Array.from(readFileSync(join(squeezenet, file))).buffer);
    const pytorch = f32('logits.f32').subarray(0, 1000); // PyTorch's logits of the first image
    const { model } = await loadModel(join(squeezenet, 'model.onnx'));
    try {
      const x = nchwToNhwcHost(f32('input.f32').subarray(0, 3 * 224 * 224), [1, 3, 224, 224]).data;
      const s = await saliency(model, x, { method: 'gradcam' });
      const top = pytorch.indexOf(Math.max(...pytorch));
      expect([s.target, s.passes, s.layer]).toEqual([top, 1, gradCamLayer(model.graph)]);
      expect(Math.abs(s.score - pytorch[top])).toBeLessThan(1e-4 * Math.abs(pytorch[top]) + 1e-5);
      expect(s.allZero).toBe(false);
      expect(s.map.length).toBe(224 * 224);
    } finally {
      disposeSaliency(model);
      model.dispose();
    }
  }, 180_000);
});
