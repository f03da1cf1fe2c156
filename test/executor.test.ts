import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime, getRuntime } from '../src/gpu/runtime.ts';
import { compile } from '../src/graph/executor.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { overlappingLivePairs, planMemory } from '../src/graph/planner.ts';
import { evaluateReference } from '../src/graph/reference.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

// A thin Inception v3 (depth multiplier 0.1, 75x75, batch 2): every op, fusion and in-place
// concat of the real network, small enough for a float64 CPU reference.
function thin() {
  const g = inceptionV3({ inputSize: 75, batch: 2, depthMultiplier: 0.1, auxLogits: false, seed: 3 });
  // Non-trivial batchnorm statistics so the folding is exercised (init gives mean 0, variance 1).
  for (const p of g.params.values()) {
    if (p.name.endsWith('moving_mean')) p.data = randomArray(p.size, p.name.length, -0.2, 0.2);
    if (p.name.endsWith('moving_variance')) p.data = randomArray(p.size, p.name.length + 1, 0.5, 1.5);
    if (p.name.endsWith('beta')) p.data = randomArray(p.size, p.name.length + 2, -0.1, 0.1);
  }
  return g;
}

describe('executor: thin Inception v3 against the float64 CPU reference', () => {
  const g = thin();
  const x = randomArray(2 * 75 * 75 * 3, 42);
  const outs = ['Mixed_6e', 'PreLogits', 'Logits', 'Predictions'];
  const ref = evaluateReference(g, { input: x }, outs);

  for (const fuse of [true, false]) {
    it(`${fuse ? 'fused' : 'unfused'} plan agrees within rtol 1e-3 / atol 1e-4`, async () => {
      const rt = await getRuntime();
      const plan = compile(rt, g, { outputs: outs, fuse });
      const got = await plan.runToHost(x);
      for (const o of outs) expectClose(got[g.endPoint(o)], ref[o], { rtol: 1e-3, atol: 1e-4 }, o);
      if (fuse) expect(plan.dispatchCount).toBeLessThan(g.nodes.length / 2);
      plan.destroy();
    });
  }

  it('a compiled plan is reused: the same input gives the same output, another input another one', async () => {
    const rt = await getRuntime();
    const plan = compile(rt, g);
    const a = await plan.runToHost(x);
    const b = await plan.runToHost(x);
    const c = await plan.runToHost(randomArray(x.length, 43));
    const logits = g.endPoint('Logits');
    expect(Array.from(b[logits])).toEqual(Array.from(a[logits]));
    expect(Array.from(c[logits])).not.toEqual(Array.from(a[logits]));
    plan.destroy();
  });

  it('the memory plan never lets two simultaneously live tensors share a buffer, and reuses memory', async () => {
    const rt = await getRuntime();
    const plan = compile(rt, g, { outputs: outs });
    expect(overlappingLivePairs(plan.memory)).toEqual([]);
    expect(plan.peakBytes).toBeLessThan(plan.memory.naiveBytes / 2);
    plan.destroy();
  });

  it('rejects inputs of the wrong size and non-finite values, naming the input', async () => {
    const rt = await getRuntime();
    const plan = compile(rt, g);
    expect(() => plan.run(new Float32Array(10))).toThrow(/input 'input' has 10 values; shape \[2,75,75,3\] needs 33750/);
    const bad = x.slice();
    bad[7] = Number.NaN;
    expect(() => plan.run(bad)).toThrow(/input 'input': value 7 is NaN/);
    plan.destroy();
  });
});

describe('memory planner', () => {
  it('places overlapping lifetimes in different buffers and reuses freed ones', () => {
    const plan = planMemory([
      { id: 0, bytes: 1000, first: 0, last: 1 },
      { id: 1, bytes: 1000, first: 1, last: 2 },
      { id: 2, bytes: 800, first: 2, last: 3 },
      { id: 3, bytes: 4000, first: 3, last: 4 },
    ]);
    expect(overlappingLivePairs(plan)).toEqual([]);
    // Largest first: slot 3 takes a buffer, slot 0 (dead before slot 3 is born) reuses it; slots 1
    // and 2 overlap each other and their neighbours, so each needs a buffer of its own.
    expect(plan.placements[0].buffer).toBe(plan.placements[3].buffer);
    expect(plan.buffers).toEqual([4096, 1024, 1024]);
    expect(plan.peakBytes).toBe(6144);
    expect(plan.naiveBytes).toBe(4096 + 1024 * 3);
  });
});

describe('executor: small graphs', () => {
  it('log-softmax over channels', async () => {
    const rt = await getRuntime();
    const b = new GraphBuilder('Tiny');
    const x = b.input('input', [1, 4, 4, 3]);
    b.output(b.node('logsoftmax', 'LogSoftmax', [x], { axis: -1 }));
    const plan = compile(rt, b.graph);
    const y = await plan.runToHost(new Float32Array(48).fill(1));
    expectClose(y['Tiny/LogSoftmax'], new Float64Array(48).fill(-Math.log(3)), { rtol: 1e-5, atol: 1e-6 }, 'logsoftmax');
  });
});

describe('Model: batches of any size', () => {
  it('splits a batch into micro-batches and gives the same result as one image at a time', async () => {
    const { Model } = await import('../src/graph/model.ts');
    const model = await Model.inceptionV3({ inputSize: 75, depthMultiplier: 0.1, auxLogits: false, seed: 5 });
    expect(model.maxMicroBatch).toBeGreaterThan(100); // 75x75 thin: far below the binding limit
    model.maxMicroBatch = 2; // force the split: 5 images run as 2 + 2 + 1
    const images = randomArray(5 * 75 * 75 * 3, 9);
    const all = await model.predict(images, { outputs: ['Predictions', 'Mixed_7c'] });
    expect(all.Predictions.length).toBe(5 * 1001);
    const per = 75 * 75 * 3;
    for (const i of [0, 3, 4]) {
      const one = await model.predict(images.subarray(i * per, (i + 1) * per), { outputs: ['Predictions'] });
      expectClose(all.Predictions.subarray(i * 1001, (i + 1) * 1001), one.Predictions, { rtol: 1e-5, atol: 1e-7 }, `image ${i}`);
    }
    expect(model.shapeOf('Mixed_7c', 5)).toEqual([5, 1, 1, 203]); // 75x75 input: Mixed_7c is 1x1; depth 0.1 (min 16) gives 203 channels
    expect(all.Mixed_7c.length).toBe(5 * 203);
    model.dispose();
  });
});
