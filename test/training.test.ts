// Whole-network gradient check: a thin Inception v3 trained end to end (every layer, batchnorm in
// training mode) against finite differences of a float64 CPU forward of the same loss.
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { Trainer } from '../src/train/trainer.ts';
import { expectClose, randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

// 107x107 and batch 3: the last blocks are 2x2, so training batchnorm normalises over 12 values
// per channel; at 1x1 x batch 2 it is so ill-conditioned that float32 and float64 part ways.
const N = 6;
const SIZE = 107;
const CLASSES = 5;

function meanCrossEntropy(logits: Float64Array, labels: Int32Array, k: number): number {
  let total = 0;
  for (let n = 0; n < labels.length; n++) {
    const row = logits.subarray(n * k, (n + 1) * k);
    const m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    total += m + Math.log(s) - row[labels[n]];
  }
  return total / labels.length;
}

describe('training step on a thin Inception v3', () => {
  it('parameter gradients agree with float64 finite differences of the loss', async () => {
    const model = await Model.inceptionV3({ inputSize: SIZE, depthMultiplier: 0.1, numClasses: CLASSES, auxLogits: false, dropoutKeepProb: 1, seed: 11 });
    // Batchnorm trains (batch statistics) up to Mixed_5d; the later blocks' batchnorm is frozen
    // (moving statistics). With 2x2 maps and a small batch, training batchnorm in the last blocks
    // normalises over a handful of values, and the cancellation in its backward amplifies float32
    // rounding by orders of magnitude per layer: the gradients of the stem then differ from the
    // float64 ones by ~10% although every kernel is right. Freezing them keeps the check sharp
    // while still covering training batchnorm, frozen (folded) batchnorm, slices and accumulation.
    const frozenBn = (p: string) => /Mixed_(6|7)/.test(p) && p.includes('/BatchNorm/');
    const trainer = new Trainer(model, { batch: N, optimizer: { kind: 'sgd' }, learningRate: 0, training: { trainable: (p) => model.graph.param(p).trainable && !frozenBn(p) } });
    // Seed 13, not 12: with 12's images a ReLU or max-pool decision in the stem sits so near a tie
    // that float32 rounding tips it, and the stem's gradient moved 3.5% with the batchnorm
    // reduction order (lanes vs tiled-256, or another lane count), past the 5% check's margin
    // against float64. With 13 the two orders agree to 2.5e-6 (NOTES.md, batchnorm variants).
    const images = randomArray(N * SIZE * SIZE * 3, 13);
    const labels = Int32Array.from([1, 3, 0, 2, 4, 1]);
    const { loss } = await trainer.trainStep(images, labels);
    const grads = await trainer.gradients();

    const graph = model.build(N);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    const logitsValue = graph.endPoint('Logits');
    const lossAt = (overrides: Map<string, Float64Array>) =>
      meanCrossEntropy(
        evaluateReference(graph, { input: images }, [logitsValue], { batchnorm: (n) => (frozenBn(n.name) ? 'inference' : 'train'), overrides })[logitsValue],
        labels,
        CLASSES,
      );
    expect(Math.abs(loss - lossAt(new Map()))).toBeLessThan(1e-3);

    // Parameters from the stem, a Mixed block's branches, the last block and the head.
    const names = [
      'InceptionV3/Conv2d_1a_3x3/weights',
      'InceptionV3/Conv2d_4a_3x3/BatchNorm/beta',
      'InceptionV3/Mixed_5d/Branch_2/Conv2d_0c_3x3/BatchNorm/beta',
      'InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/weights',
      'InceptionV3/Mixed_6b/Branch_2/Conv2d_0d_7x1/weights',
      'InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/weights',
      'InceptionV3/Logits/Conv2d_1c_1x1/weights',
      'InceptionV3/Logits/Conv2d_1c_1x1/biases',
    ];
    // Directional derivatives: for a random direction d over a whole parameter tensor, the
    // central difference of the loss along d must equal <grad, d>. Summing over all elements
    // averages out the kinks (ReLU, max pool) that make single-element differences of early layers
    // unreliable in a deep net; the tolerance is 5% of |<grad, d>| plus a small floor.
    const r = rng(13);
    for (const name of names) {
      const base = Float64Array.from(model.graph.param(name).data);
      const g = grads.get(name);
      expect(g, name).toBeDefined();
      const d = base.map(() => r() * 2 - 1);
      let analytic = 0;
      for (let i = 0; i < d.length; i++) analytic += g![i] * d[i];
      const h = 1e-5;
      const plus = base.map((v, i) => v + h * d[i]);
      const minus = base.map((v, i) => v - h * d[i]);
      const fd = (lossAt(new Map([[name, plus]])) - lossAt(new Map([[name, minus]]))) / (2 * h);
      expect(Math.abs(analytic - fd), `${name}: <grad, d> ${analytic} vs finite differences ${fd}`).toBeLessThan(1e-3 + 0.05 * Math.abs(fd));
    }
    // Single elements of the head, where the loss is smooth: tight agreement.
    for (const name of ['InceptionV3/Logits/Conv2d_1c_1x1/weights', 'InceptionV3/Logits/Conv2d_1c_1x1/biases']) {
      const base = Float64Array.from(model.graph.param(name).data);
      for (const i of [0, base.length - 1]) {
        const h = 1e-5;
        const plus = base.slice();
        const minus = base.slice();
        plus[i] += h;
        minus[i] -= h;
        const fd = (lossAt(new Map([[name, plus]])) - lossAt(new Map([[name, minus]]))) / (2 * h);
        expect(Math.abs(grads.get(name)![i] - fd), `${name}[${i}]`).toBeLessThan(1e-5 + 1e-3 * Math.abs(fd));
      }
    }
    trainer.dispose();
    model.dispose();
  }, 300_000);
});

describe('training step: input gradient, micro-batches, optimizers', () => {
  // All batchnorm frozen (moving statistics, folded into the convs) and 75x75: smooth and cheap.
  const frozenBn = (p: string) => p.includes('/BatchNorm/');
  const opts = { inputSize: 75, depthMultiplier: 0.1, numClasses: CLASSES, auxLogits: false, dropoutKeepProb: 1, seed: 21 };

  it('the input-image gradient agrees with float64 finite differences', async () => {
    const model = await Model.inceptionV3(opts);
    const trainable = (p: string) => model.graph.param(p).trainable && !frozenBn(p);
    const trainer = new Trainer(model, { batch: 2, optimizer: { kind: 'sgd' }, learningRate: 0, training: { trainable, inputGrad: true } });
    const images = randomArray(2 * 75 * 75 * 3, 22);
    const labels = Int32Array.from([2, 4]);
    await trainer.trainStep(images, labels);
    const g = await trainer.inputGradient();
    const graph = model.build(2);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    const logits = graph.endPoint('Logits');
    const lossOf = (x: Float64Array) => meanCrossEntropy(evaluateReference(graph, { input: x }, [logits])[logits], labels, CLASSES);
    const r = rng(23);
    const base = Float64Array.from(images);
    for (let trial = 0; trial < 1; trial++) {
      const d = base.map(() => r() * 2 - 1);
      let analytic = 0;
      for (let i = 0; i < d.length; i++) analytic += g[i] * d[i];
      const h = 1e-5;
      const fd = (lossOf(base.map((v, i) => v + h * d[i])) - lossOf(base.map((v, i) => v - h * d[i]))) / (2 * h);
      expect(Math.abs(analytic - fd), `<dL/dx, d> ${analytic} vs finite differences ${fd}`).toBeLessThan(1e-4 + 1e-2 * Math.abs(fd));
    }
    trainer.dispose();
    model.dispose();
  }, 300_000);

  it('a batch split into micro-batches gives the gradients of the whole batch', async () => {
    const model = await Model.inceptionV3(opts);
    const trainable = (p: string) => model.graph.param(p).trainable && !frozenBn(p);
    const images = randomArray(4 * 75 * 75 * 3, 24);
    const labels = Int32Array.from([0, 1, 2, 3]);
    const whole = new Trainer(model, { batch: 4, optimizer: { kind: 'sgd' }, learningRate: 0, training: { trainable } });
    const split = new Trainer(model, { batch: 4, optimizer: { kind: 'sgd' }, learningRate: 0, training: { trainable }, maxMicroBatch: 2 });
    expect(whole.microBatches).toBe(1);
    expect(split.microBatches).toBe(2);
    const a = await whole.trainStep(images, labels);
    const ga = await whole.gradients();
    const b = await split.trainStep(images, labels);
    const gb = await split.gradients();
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    for (const name of ['InceptionV3/Conv2d_1a_3x3/weights', 'InceptionV3/Mixed_6b/Branch_1/Conv2d_0c_7x1/weights', 'InceptionV3/Logits/Conv2d_1c_1x1/biases']) {
      expectClose(gb.get(name)!, ga.get(name)!, { rtol: 1e-3, atol: 1e-6 }, name);
    }
    whole.dispose();
    split.dispose();
    model.dispose();
  }, 300_000);

  // A tiny batch the network must memorise: the loss falls below a bound under each optimizer.
  const optimizers = [
    { name: 'SGD with Nesterov momentum', optimizer: { kind: 'momentum' as const, momentum: 0.9, nesterov: true }, lr: 0.05 },
    { name: 'RMSProp (TF-Slim settings)', optimizer: { kind: 'rmsprop' as const, decay: 0.9, momentum: 0.9, epsilon: 1.0 }, lr: 0.05 },
    { name: 'Adam', optimizer: { kind: 'adam' as const }, lr: 0.003 },
  ];
  for (const o of optimizers) {
    it(`a thin network overfits a batch of 4 with ${o.name}: loss < 0.1`, async () => {
      const model = await Model.inceptionV3({ ...opts, seed: 31 });
      const trainer = new Trainer(model, { batch: 4, optimizer: o.optimizer, learningRate: o.lr });
      const images = randomArray(4 * 75 * 75 * 3, 32);
      const labels = Int32Array.from([0, 1, 2, 3]);
      const first = (await trainer.trainStep(images, labels)).loss;
      let last = first;
      for (let s = 0; s < 40 && last >= 0.1; s++) last = (await trainer.trainStep(images, labels)).loss;
      expect(first).toBeGreaterThan(1);
      expect(last, `${o.name}: loss ${first} -> ${last}`).toBeLessThan(0.1);
      trainer.dispose();
      model.dispose();
    }, 300_000);
  }
});
