// classify (decode, preprocess, softmax, top-k with names) and trainHead (a new head trained on
// in-memory images), on a thin random Inception v3.
import { afterAll, describe, expect, it } from 'vitest';
import {
  type DecodedImage,
  Model,
  classify,
  closeRuntime,
  getRuntime,
  inceptionV3,
  preprocessImage,
  randomInception,
  replaceHead,
  topClasses,
  trainHead,
} from '../src/index.ts';
import { rng } from './helpers.ts';

afterAll(closeRuntime);

const options = { numClasses: 4, depthMultiplier: 0.1, inputSize: 75, auxLogits: false, seed: 2 };

function image(seed: number, w = 83, h = 79): DecodedImage {
  const r = rng(seed);
  return { width: w, height: h, data: Float32Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256)) };
}

describe('topClasses', () => {
  it('orders by probability, ties by index, names or "class N", k capped', () => {
    expect(topClasses([0.1, 0.4, 0.1, 0.4], 3, null)).toEqual([
      { index: 1, label: 'class 1', prob: 0.4 },
      { index: 3, label: 'class 3', prob: 0.4 },
      { index: 0, label: 'class 0', prob: 0.1 },
    ]);
    expect(topClasses([0.2, 0.8], 5, ['cat', 'dog']).map((p) => p.label)).toEqual(['dog', 'cat']);
  });
});

describe('classify', () => {
  it("applies the model's preprocessing and a softmax of its logits (computed here in float64)", async () => {
    const rt = await getRuntime();
    const model = new Model(rt, (batch) => inceptionV3({ ...options, batch }));
    const loaded = { model, preprocessing: randomInception(options).preprocessing!, output: 'Logits', probabilities: false, classes: ['a', 'b', 'c', 'd'], source: 'random' };
    const images = [image(1), image(2)];
    const got = await classify(loaded as never, images, { top: 4 });
    const pre = new Float32Array(2 * 75 * 75 * 3);
    images.forEach((im, i) => pre.set(preprocessImage(im, loaded.preprocessing), i * 75 * 75 * 3));
    const logits = (await model.predict(pre, { outputs: ['Logits'] })).Logits;
    for (let i = 0; i < 2; i++) {
      const row = Array.from(logits.subarray(i * 4, i * 4 + 4));
      const max = Math.max(...row);
      const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
      const probs = row.map((v) => Math.exp(v - max) / sum);
      expect(got[i].map((p) => p.index)).toEqual([0, 1, 2, 3].sort((a, b) => probs[b] - probs[a] || a - b));
      for (const p of got[i]) {
        expect(p.prob).toBeCloseTo(probs[p.index], 6);
        expect(p.label).toBe('abcd'[p.index]);
      }
    }
    model.dispose();
  });
});

describe('trainHead', () => {
  it('trains only the new head; the loss falls; predictions use the trained head at once', async () => {
    const rt = await getRuntime();
    const tm = await replaceHead(randomInception(options), { head: 2, rt });
    const images = new Float32Array(4 * 75 * 75 * 3);
    const pre = tm.preprocessing;
    for (let i = 0; i < 4; i++) images.set(preprocessImage(image(10 + i), pre), i * 75 * 75 * 3);
    const labels = Int32Array.from([0, 1, 0, 1]);
    const before = new Map([...tm.model.graph.params.values()].map((p) => [p.name, Float32Array.from(p.data!)]));
    const logitsBefore = (await tm.model.predict(images, { outputs: ['Logits'] })).Logits;
    const losses = await trainHead(tm, images, labels, { steps: 6, batch: 4, learningRate: 0.05 });
    expect(losses).toHaveLength(6);
    expect(losses[5]).toBeLessThan(losses[0]);
    const changed = [...tm.model.graph.params.values()].filter((p) => p.data!.some((v, i) => v !== before.get(p.name)![i])).map((p) => p.name);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every((n) => n.startsWith('InceptionV3/Logits/'))).toBe(true);
    const logitsAfter = (await tm.model.predict(images, { outputs: ['Logits'] })).Logits;
    expect(Array.from(logitsAfter)).not.toEqual(Array.from(logitsBefore));
    await expect(trainHead(tm, images, Int32Array.from([0, 1, 2, 1]), { steps: 1, batch: 2, learningRate: 0.1 })).rejects.toThrow(/label 2 of image 2 is not a class of a 2-class head/);
    tm.model.dispose();
  });
});
