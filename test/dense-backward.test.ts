// Backward of the ops an imported classifier ends with: a residual add, a per-channel scaling
// (mul), a normalisation (ONNX's Sub and Div), a dense head (MatMul, as TF's retrain graphs and ONNX's Gemm import) and a rank-2
// BiasAdd. Parameter gradients (Trainer) and the input gradient (saliency) are checked against
// finite differences of the graph's float64 CPU reference.
import { afterAll, describe, expect, it } from 'vitest';
import { saliency } from '../src/explain/saliency.ts';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import type { Graph } from '../src/graph/ir.ts';
import { Model } from '../src/graph/model.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { Trainer } from '../src/train/trainer.ts';
import { randomArray, rng } from './helpers.ts';

afterAll(closeRuntime);

const N = 3;
const SIZE = 6;
const C = 4;
const CLASSES = 5;

function denseGraph(batch: number): Graph {
  const b = new GraphBuilder('Dense', { seed: 7 });
  const x = b.input('input', [batch, SIZE, SIZE, 3]);
  const logits = b.argScope({ batchNorm: false, padding: 'SAME' }, () => {
    const c1 = b.conv2d('Conv2d_1a_3x3', x, C, 3);
    const c2 = b.conv2d('Conv2d_2a_1x1', c1, C, 1, { activation: 'none' });
    const sum = b.node('add', 'Residual', [c1, c2], {});
    const scale = b.variable('Scale/gamma', [C], { kind: 'truncated_normal', stddev: 1, mean: 1 });
    const scaled = b.node('mul', 'Scaled', [sum, scale], {});
    const offset = b.variable('Norm/offset', [C], { kind: 'truncated_normal', stddev: 0.3 });
    const divisor = b.variable('Norm/divisor', [C], { kind: 'truncated_normal', stddev: 0.2, mean: 2 });
    const normed = b.node('div', 'Normed', [b.node('sub', 'Shifted', [scaled, offset], {}), divisor], {});
    const pooled = b.squeeze('Pooled', b.node('mean', 'GlobalPool', [normed], { axes: [1, 2], keepDims: true }), [1, 2]);
    const w = b.variable('Logits/weights', [C, CLASSES], { kind: 'truncated_normal', stddev: 0.5 });
    const bias = b.variable('Logits/biases', [CLASSES], { kind: 'truncated_normal', stddev: 0.1 });
    const mm = b.node('matmul', 'Logits/MatMul', [pooled, w], { transA: false, transB: false });
    return b.node('bias_add', 'Logits/BiasAdd', [mm, bias], {});
  });
  b.endPoint('Logits', logits);
  b.output(b.endPoint('Predictions', b.softmax('Predictions', logits)));
  return b.graph;
}

function crossEntropy(z: Float64Array, labels: Int32Array): number {
  let total = 0;
  for (let n = 0; n < labels.length; n++) {
    const row = z.subarray(n * CLASSES, (n + 1) * CLASSES);
    const m = Math.max(...row);
    total += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[labels[n]];
  }
  return total / labels.length;
}

/** <grad, d> against the central difference of f along d, for a random direction d. */
function checkDirectional(what: string, grad: ArrayLike<number>, base: Float64Array, f: (v: Float64Array) => number, seed: number) {
  const r = rng(seed);
  const d = base.map(() => r() * 2 - 1);
  let analytic = 0;
  for (let i = 0; i < d.length; i++) analytic += grad[i] * d[i];
  const h = 1e-5;
  const fd = (f(base.map((v, i) => v + h * d[i])) - f(base.map((v, i) => v - h * d[i]))) / (2 * h);
  expect(Math.abs(analytic - fd), `${what}: <grad, d> ${analytic} vs finite differences ${fd}`).toBeLessThan(1e-5 + 1e-3 * Math.abs(fd));
}

describe('add, mul, sub, div, matmul and rank-2 bias_add backward', () => {
  it('parameter gradients and the input gradient agree with float64 finite differences', async () => {
    const model = new Model(await getRuntime(), denseGraph);
    const images = randomArray(N * SIZE * SIZE * 3, 31);
    const labels = Int32Array.from([1, 4, 2]);
    const trainer = new Trainer(model, { batch: N, optimizer: { kind: 'sgd' }, learningRate: 0 });
    await trainer.trainStep(images, labels);
    const grads = await trainer.gradients();
    trainer.dispose();

    const graph = model.build(N);
    for (const p of graph.params.values()) p.data = model.graph.param(p.name).data;
    const logits = graph.endPoint('Logits');
    const lossWith = (name: string) => (v: Float64Array) =>
      crossEntropy(evaluateReference(graph, { input: images }, [logits], { overrides: new Map([[name, v]]) })[logits], labels);
    const names = ['Dense/Conv2d_1a_3x3/weights', 'Dense/Conv2d_2a_1x1/biases', 'Dense/Scale/gamma', 'Dense/Norm/offset', 'Dense/Norm/divisor', 'Dense/Logits/weights', 'Dense/Logits/biases'];
    names.forEach((name, k) => {
      expect(grads.get(name), name).toBeDefined();
      checkDirectional(name, grads.get(name)!, Float64Array.from(model.graph.param(name).data), lossWith(name), 40 + k);
    });

    // The input gradient of one class score, through the same ops (saliency's gradient program).
    const image = images.subarray(0, SIZE * SIZE * 3);
    const one = model.build(1);
    for (const p of one.params.values()) p.data = model.graph.param(p.name).data;
    const target = 3;
    const s = await saliency(model, image, { method: 'vanilla', target, objective: 'score' });
    const scoreAt = (x: Float64Array) => evaluateReference(one, { input: x }, [one.endPoint('Logits')])[one.endPoint('Logits')][target];
    checkDirectional('input', s.raw, Float64Array.from(image), scoreAt, 50);
    model.dispose();
  }, 120_000);
});
