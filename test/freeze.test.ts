// Freezing: the trainable set of each mode on a thin Inception v3 (all, head only, TF-Slim
// trainable_scopes, "from layer X up"), errors for unknown layers and scopes, per-scope learning-rate
// multipliers, and the proof that freezing cuts the backward pass: the training step of a model
// trained from Mixed_7a up, counted dispatch by dispatch, has no backward work below Mixed_7a, runs
// frozen batchnorm with moving statistics, and needs far fewer dispatches than training everything.
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { Model } from '../src/graph/model.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { isBackwardStep, layerStart, parseFreeze, parseLrMultipliers, trainableParams, trainablePredicate } from '../src/train/freeze.ts';
import { Trainer } from '../src/train/trainer.ts';
import { join } from 'node:path';
import { openModel } from '../src/import/load-model.ts';
import { SHARED_DIR, fixturesPresent, needsTitle, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const THIN = { inputSize: 75, depthMultiplier: 0.1, auxLogits: false, numClasses: 3, seed: 1 } as const;
const HEAD = ['InceptionV3/Logits'];
const graph = inceptionV3(THIN);
const allTrainable = [...graph.params.values()].filter((p) => p.trainable).map((p) => p.name);
const block = (p: string) => /^InceptionV3\/([A-Za-z0-9_]+)\//.exec(p)![1];

describe('trainable sets', () => {
  it('all: every trainable parameter, never the moving statistics', () => {
    const t = trainableParams(graph, { kind: 'all' }, HEAD);
    expect(t).toEqual(allTrainable);
    expect(t.some((p) => p.includes('moving_'))).toBe(false);
    expect(t.length).toBeGreaterThan(100);
  });

  it('head: only the new head', () => {
    expect(trainableParams(graph, { kind: 'head' }, HEAD)).toEqual(['InceptionV3/Logits/Conv2d_1c_1x1/weights', 'InceptionV3/Logits/Conv2d_1c_1x1/biases']);
    expect(() => trainableParams(graph, { kind: 'head' }, [])).toThrow(/head scopes/);
  });

  it('scopes: TF-Slim trainable_scopes by name prefix (the head always trains)', () => {
    const t = trainableParams(graph, { kind: 'scopes', scopes: ['InceptionV3/Mixed_7c', 'InceptionV3/Mixed_7b/Branch_0'] }, HEAD);
    expect(new Set(t.map(block))).toEqual(new Set(['Mixed_7c', 'Mixed_7b', 'Logits']));
    expect(t.filter((p) => p.includes('Mixed_7b')).every((p) => p.includes('Mixed_7b/Branch_0/'))).toBe(true);
    expect(() => trainableParams(graph, { kind: 'scopes', scopes: ['InceptionV3/Mixed_9'] }, HEAD)).toThrow(/no parameter of graph InceptionV3 is under 'InceptionV3\/Mixed_9'/);
    expect(() => trainableParams(graph, { kind: 'scopes', scopes: [' '] }, HEAD)).toThrow(/empty/);
  });

  it('from: the layer and everything after it in graph order, by end point, scope or node', () => {
    const t = trainableParams(graph, { kind: 'from', layer: 'Mixed_6e' }, HEAD);
    expect(new Set(t.map(block))).toEqual(new Set(['Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c', 'Logits']));
    expect(t).toEqual(allTrainable.filter((p) => /Mixed_6e|Mixed_7|Logits/.test(p)));
    expect(trainableParams(graph, { kind: 'from', layer: 'InceptionV3/Mixed_6e' }, HEAD)).toEqual(t);
    // An end point without a scope of its own (PreLogits is the dropout's value): only the head is after it.
    expect(trainableParams(graph, { kind: 'from', layer: 'PreLogits' }, HEAD)).toEqual(trainableParams(graph, { kind: 'head' }, HEAD));
    expect(trainableParams(graph, { kind: 'from', layer: 'Conv2d_1a_3x3' }, HEAD)).toEqual(allTrainable);
    // A branch inside a block: from there on, later branches of the block included.
    const branch = trainableParams(graph, { kind: 'from', layer: 'InceptionV3/Mixed_7c/Branch_2' }, HEAD);
    expect(branch.some((p) => p.includes('Mixed_7c/Branch_1/'))).toBe(false);
    expect(branch.some((p) => p.includes('Mixed_7c/Branch_3/'))).toBe(true);
    const pred = trainablePredicate(graph, { kind: 'from', layer: 'Mixed_7a' }, HEAD);
    expect(pred('InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/weights')).toBe(true);
    expect(pred('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights')).toBe(false);
    expect(pred('InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_mean')).toBe(false);
  });

  it('names the unknown layer and lists the end points', () => {
    expect(() => layerStart(graph, 'Mixed_8x')).toThrow(/trainable-from: no layer 'Mixed_8x' in graph InceptionV3 \(end points: Conv2d_1a_3x3, .*Mixed_6e.*\)/);
    expect(() => trainableParams(graph, { kind: 'from', layer: 'Mixed_8x' }, HEAD)).toThrow(/no layer 'Mixed_8x'/);
  });

  it('parses freeze specs and learning-rate multipliers', () => {
    expect(parseFreeze('head')).toEqual({ kind: 'head' });
    expect(parseFreeze('from:Mixed_6e')).toEqual({ kind: 'from', layer: 'Mixed_6e' });
    expect(parseFreeze('scopes:A,B')).toEqual({ kind: 'scopes', scopes: ['A', 'B'] });
    expect(() => parseFreeze('some')).toThrow(/not all, head/);
    expect(parseLrMultipliers(['InceptionV3/Logits=10', 'InceptionV3/Mixed_7=0.5'])).toEqual([
      { scope: 'InceptionV3/Logits', multiplier: 10 },
      { scope: 'InceptionV3/Mixed_7', multiplier: 0.5 },
    ]);
    for (const bad of ['x', '=2', 'A=', 'A=-1', 'A=z']) expect(() => parseLrMultipliers([bad])).toThrow(/not SCOPE=NUMBER/);
    expect(isBackwardStep('InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/Conv2D (filter gradient)')).toBe(true);
    expect(isBackwardStep('InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/BatchNorm/FusedBatchNorm (backward)')).toBe(true);
    expect(isBackwardStep('x/Conv2D (epilogue backward)')).toBe(true);
    expect(isBackwardStep('x/FusedBatchNorm (training forward)')).toBe(false);
    expect(isBackwardStep('loss (softmax_cross_entropy)')).toBe(false);
  });
});

const MOBILENET = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
describe('imported graphs', () => {
  it.skipIf(!fixturesPresent([MOBILENET]))(needsTitle('finds a layer by its variables when node names differ (MobilenetV1/MobilenetV1/...)', [MOBILENET]), () => {
    const g = openModel(MOBILENET).graph;
    const i = layerStart(g, 'MobilenetV1/Conv2d_13_pointwise');
    expect(g.nodes[i].name).toBe('MobilenetV1/MobilenetV1/Conv2d_13_pointwise/convolution');
    expect(layerStart(g, 'Conv2d_13_pointwise')).toBe(i);
    const t = trainableParams(g, { kind: 'from', layer: 'MobilenetV1/Conv2d_13_pointwise' }, ['MobilenetV1/Logits']);
    expect(t).toEqual([
      'MobilenetV1/Conv2d_13_pointwise/weights',
      'MobilenetV1/Conv2d_13_pointwise/BatchNorm/gamma',
      'MobilenetV1/Conv2d_13_pointwise/BatchNorm/beta',
      'MobilenetV1/Logits/Conv2d_1c_1x1/weights',
      'MobilenetV1/Logits/Conv2d_1c_1x1/biases',
    ]);
  });
});

describe('freezing cuts the training step', () => {
  it('trained from Mixed_7a up: no backward below Mixed_7a, frozen batchnorm folded, far fewer dispatches', async () => {
    const model = await Model.inceptionV3(THIN);
    const all = new Trainer(model, { batch: 2, optimizer: { kind: 'sgd' }, learningRate: 0.01 });
    const from7a = new Trainer(model, {
      batch: 2,
      optimizer: { kind: 'sgd' },
      learningRate: 0.01,
      training: { trainable: trainablePredicate(model.graph, { kind: 'from', layer: 'Mixed_7a' }, HEAD) },
    });
    const above = (name: string) => /^InceptionV3\/(Mixed_7|Logits)/.test(name);
    const steps = from7a.program.stepDispatches;
    const backward = steps.filter((s) => isBackwardStep(s.name));
    expect(backward.length).toBeGreaterThan(0);
    expect(backward.filter((s) => !above(s.name)).map((s) => s.name)).toEqual([]);
    expect(backward.some((s) => s.name.startsWith('InceptionV3/Mixed_7a/'))).toBe(true);
    // Below Mixed_7a every layer is frozen: batchnorm folded into its conv (moving statistics), no training forward.
    expect(steps.filter((s) => s.name.includes('(training forward)') && s.name.includes('BatchNorm') && !above(s.name)).map((s) => s.name)).toEqual([]);
    expect(steps.some((s) => s.name.startsWith('InceptionV3/Mixed_7a/') && s.name.endsWith('(training forward)'))).toBe(true);

    const allSteps = all.program.stepDispatches;
    expect(allSteps.filter((s) => isBackwardStep(s.name) && s.name.startsWith('InceptionV3/Conv2d_1a_3x3/')).length).toBeGreaterThan(0);
    const count = (xs: { dispatches: number }[]) => xs.reduce((s, x) => s + x.dispatches, 0);
    expect(count(steps)).toBe(from7a.program.dispatchCount);
    expect(count(backward)).toBeLessThan(0.3 * count(allSteps.filter((s) => isBackwardStep(s.name))));
    expect(from7a.dispatchCount).toBeLessThan(0.5 * all.dispatchCount);
    expect(from7a.training.trainedParams.every(above)).toBe(true);
    all.dispose();
    from7a.dispose();
    model.dispose();
  });

  it('per-scope learning-rate multipliers: a multiplier of 0 leaves its scope unchanged', async () => {
    const model = await Model.inceptionV3({ ...THIN, dropoutKeepProb: 1 });
    const trainer = new Trainer(model, {
      batch: 2,
      optimizer: { kind: 'sgd' },
      learningRate: 0.1,
      training: { trainable: trainablePredicate(model.graph, { kind: 'from', layer: 'Mixed_7c' }, HEAD) },
      lrMultipliers: parseLrMultipliers(['InceptionV3/Mixed_7c/Branch_0=0', 'InceptionV3/Logits=2']),
    });
    const names = { frozen: 'InceptionV3/Mixed_7c/Branch_0/Conv2d_0a_1x1/weights', trained: 'InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/weights', head: 'InceptionV3/Logits/Conv2d_1c_1x1/weights' };
    const before = Object.fromEntries(Object.entries(names).map(([k, n]) => [k, Float32Array.from(model.graph.param(n).data)]));
    await trainer.trainStep(randomArray(2 * 75 * 75 * 3, 2), Int32Array.from([0, 2]));
    const grads = await trainer.gradients();
    await trainer.syncToHost();
    const after = (k: keyof typeof names) => model.graph.param(names[k]).data;
    expect([...after('frozen')]).toEqual([...before.frozen]);
    expect([...after('trained')]).not.toEqual([...before.trained]);
    // SGD: w' = w - lr * multiplier * g.
    const g = grads.get(names.head)!;
    const i = g.findIndex((v) => Math.abs(v) > 1e-4);
    expect(after('head')[i]).toBeCloseTo(before.head[i] - 0.1 * 2 * g[i], 6);
    trainer.dispose();
    model.dispose();
  });
});
