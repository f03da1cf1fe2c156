// Saliency through the GPU autodiff, checked against float64 CPU computations on a thin network.
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { disposeSaliency, saliency } from '../src/explain/saliency.ts';
import { Model } from '../src/graph/model.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { randomArray, rng } from './helpers.ts';

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
    }
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
    const s = await saliency(model, image, { method: 'gradcam', target });
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
    disposeSaliency(model);
    model.dispose();
  }, 300_000);
});
