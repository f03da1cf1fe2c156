// Head replacement: Inception v3 rebuilt with a new class count (names, shapes, the base's data
// kept, TF-Slim's truncated-normal initialisation of the new head), TF-Slim's
// checkpoint_exclude_scopes when loading a pretrained checkpoint, cutting an arbitrary graph at a
// named value and appending a head, and the sigmoid head saved as an exactly equivalent 2-class
// softmax model. The MobileNet fixture (../shared) gets a 22-class head when present.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { GRAPH_ARCHITECTURE, loadModel, openModel } from '../src/import/load-model.ts';
import { readCheckpoint } from '../src/import/load.ts';
import { writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { type BaseModel, cutAndAppendHead, INCEPTION_HEAD_SCOPES, loadPretrained, parseHead, randomInception, replaceHead, saveTransferModel } from '../src/train/head.ts';
import { SHARED_DIR, hasShared, randomArray, sharedMissingMessage } from './helpers.ts';

afterAll(closeRuntime);

const THIN = { inputSize: 75, depthMultiplier: 0.1, auxLogits: false } as const;
const LOGITS_W = 'InceptionV3/Logits/Conv2d_1c_1x1/weights';
const LOGITS_B = 'InceptionV3/Logits/Conv2d_1c_1x1/biases';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-head-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A "pretrained" thin base: 10 classes, every parameter scaled away from its initial values. */
function pretrained(numClasses = 10, extra: object = {}): BaseModel {
  const base = randomInception({ ...THIN, numClasses, seed: 5, ...extra });
  let k = 0;
  for (const p of base.graph.params.values()) {
    const f = randomArray(p.size, 100 + k++, 0.9, 1.1);
    p.data = p.data.map((v, i) => v * f[i]);
  }
  return base;
}

describe('parseHead', () => {
  it('reads class counts and sigmoid, refuses the rest', () => {
    expect(parseHead('sigmoid')).toEqual({ kind: 'sigmoid', classes: 2 });
    expect(parseHead('5')).toEqual({ kind: 'softmax', classes: 5 });
    expect(parseHead(3)).toEqual({ kind: 'softmax', classes: 3 });
    for (const bad of ['1', 'x', '2.5', '0', 1]) expect(() => parseHead(bad)).toThrow(/not 'sigmoid' or a class count/);
  });
});

describe('Inception v3 head replacement', () => {
  it('rebuilds the logits for N classes, keeps every other parameter, initialises the head as TF-Slim does', async () => {
    const base = pretrained();
    const tm = await replaceHead(base, { head: 5, seed: 9 });
    const g = tm.model.graph;
    expect(tm.headScopes).toEqual(['InceptionV3/Logits']);
    expect(tm.head).toEqual({ kind: 'softmax', classes: 5 });
    expect(g.param(LOGITS_W).shape.slice(3)).toEqual([5]);
    expect(g.param(LOGITS_B).shape).toEqual([5]);
    expect(tm.model.shapeOf('Logits')).toEqual([1, 5]);
    expect([...g.params.keys()].sort()).toEqual([...base.graph.params.keys()].sort());
    for (const p of g.params.values()) {
      if (p.name.startsWith('InceptionV3/Logits/')) continue;
      expect(p.data, p.name).toBe(base.graph.param(p.name).data);
    }
    // slim.conv2d under inception_arg_scope: variance scaling (factor 2, FAN_IN) as a truncated normal,
    // stddev sqrt(1.3 * 2 / fan_in) cut at 2 stddev; the cut leaves a sample stddev of about sqrt(2 / fan_in).
    const w = g.param(LOGITS_W);
    const fanIn = w.shape[2];
    const sd = Math.sqrt(2.6 / fanIn);
    const d = w.data;
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    const std = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length);
    expect(Math.max(...d.map(Math.abs))).toBeLessThanOrEqual(2 * sd + 1e-6);
    expect(Math.abs(mean)).toBeLessThan(0.1 * sd);
    expect(std / Math.sqrt(2 / fanIn)).toBeGreaterThan(0.9);
    expect(std / Math.sqrt(2 / fanIn)).toBeLessThan(1.1);
    expect([...g.param(LOGITS_B).data]).toEqual([0, 0, 0, 0, 0]);
    const probs = (await tm.model.predict(randomArray(2 * 75 * 75 * 3, 3), { outputs: ['Predictions'] })).Predictions;
    expect(probs.length).toBe(10);
    expect(probs[0] + probs[1] + probs[2] + probs[3] + probs[4]).toBeCloseTo(1, 5);
    tm.model.dispose();
  });

  it('replaces the aux head too, and a sigmoid head has one logit', async () => {
    const base = pretrained(10, { inputSize: 107, auxLogits: true });
    const tm = await replaceHead(base, { head: 'sigmoid' });
    expect(tm.headScopes).toEqual(INCEPTION_HEAD_SCOPES);
    const g = tm.model.graph;
    expect(g.param(LOGITS_W).shape[3]).toBe(1);
    expect(g.param('InceptionV3/AuxLogits/Conv2d_2b_1x1/weights').shape[3]).toBe(1);
    // The aux head's inner layers are new too (scope excluded), and start from their initializers.
    const inner = 'InceptionV3/AuxLogits/Conv2d_1b_1x1/weights';
    expect(g.param(inner).data).not.toBe(base.graph.param(inner).data);
    expect(g.param('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights').data).toBe(base.graph.param('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights').data);
    tm.model.dispose();
  });

  it('excludes the head scopes when loading a pretrained checkpoint (checkpoint_exclude_scopes)', async () => {
    // A TF checkpoint of the 1001-class ImageNet layout (thin), with optimizer slots and global_step.
    const imagenet = inceptionV3({ ...THIN, numClasses: 1001, seed: 2 });
    const tensors: [string, { shape: number[]; data: Float32Array | BigInt64Array }][] = [];
    let k = 0;
    for (const p of imagenet.params.values()) tensors.push([p.name, { shape: [...p.shape], data: randomArray(p.size, 200 + k++) }]);
    tensors.push([`${LOGITS_W}/RMSProp`, { shape: [...imagenet.param(LOGITS_W).shape], data: new Float32Array(imagenet.param(LOGITS_W).size) }]);
    tensors.push(['global_step', { shape: [], data: BigInt64Array.from([1000n]) }]);
    const prefix = join(dir, 'imagenet.ckpt');
    writeCheckpointV2(prefix, tensors);
    const ckpt = readCheckpoint(prefix);

    const tm = await replaceHead(randomInception({ ...THIN, seed: 7 }), { head: 3, seed: 7 });
    const headBefore = Float32Array.from(tm.model.graph.param(LOGITS_W).data);
    const report = loadPretrained(tm, ckpt);
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.excluded).toEqual([LOGITS_B, LOGITS_W, `${LOGITS_W}/RMSProp`].sort());
    expect(report.ignored).toEqual(['global_step']);
    expect(report.shapeMismatches.map((m) => m.name).sort()).toEqual([LOGITS_B, LOGITS_W]);
    expect(report.loaded.length).toBe(tm.model.graph.params.size - 2);
    const conv = 'InceptionV3/Conv2d_1a_3x3/weights';
    expect([...tm.model.graph.param(conv).data]).toEqual([...ckpt.get(conv)!.data as Float32Array]);
    expect([...tm.model.graph.param(LOGITS_W).data]).toEqual([...headBefore]);
    tm.model.dispose();
  });

  it('saves a sigmoid head as a 2-class softmax model with the same probabilities', async () => {
    const tm = await replaceHead(pretrained(), { head: 'sigmoid', classes: ['benign', 'malignant'] });
    // A head far from zero, so the probabilities are not all one half.
    tm.model.graph.param(LOGITS_W).data = randomArray(tm.model.graph.param(LOGITS_W).size, 8, -0.05, 0.05);
    tm.model.graph.param(LOGITS_B).data = Float32Array.from([0.3]);
    tm.model.parametersChanged();
    const x = randomArray(3 * 75 * 75 * 3, 4);
    const z = (await tm.model.predict(x, { outputs: ['Logits'] })).Logits;
    const path = join(dir, 'sigmoid.safetensors');
    const meta = saveTransferModel(tm, path);
    expect(meta.architecture).toBe('inception_v3');
    expect(meta.head).toBe('sigmoid');
    const loaded = await loadModel(path);
    expect(loaded.classes).toEqual(['benign', 'malignant']);
    const p = (await loaded.model.predict(x, { outputs: ['Predictions'] })).Predictions;
    expect(p.length).toBe(6);
    for (let i = 0; i < 3; i++) {
      expect(p[2 * i + 1]).toBeCloseTo(1 / (1 + Math.exp(-z[i])), 5);
      expect(p[2 * i] + p[2 * i + 1]).toBeCloseTo(1, 6);
    }
    expect(new Set(Array.from({ length: 3 }, (_, i) => p[2 * i + 1].toFixed(4))).size).toBeGreaterThan(1);
    loaded.model.dispose();
    tm.model.dispose();
  });
});

describe('cutting a graph and appending a head', () => {
  /** The thin Inception v3 as if imported: no builder to rebuild, only a graph to cut. */
  function imported(): BaseModel {
    const b = pretrained();
    return { ...b, meta: { architecture: GRAPH_ARCHITECTURE, options: {} } };
  }

  it('keeps only what the cut depends on, mean-pools, and adds conv 1x1 + biases with softmax', async () => {
    const base = imported();
    // Without a cut point, the one global pool (AvgPool_1a) is taken; a wrong name lists the candidates.
    const byItself = await replaceHead(base, { head: 4 });
    expect(byItself.model.graph.nodes.some((n) => n.name.startsWith('InceptionV3/Mixed_7c/'))).toBe(true);
    expect(byItself.model.graph.nodes.some((n) => n.name === 'InceptionV3/Logits/GlobalPool')).toBe(false);
    byItself.model.dispose();
    await expect(replaceHead(base, { head: 4, cutAt: 'Mixed_9z' })).rejects.toThrow(/'Mixed_9z' is not a value or end point.*candidates: 'AvgPool_1a' .*\(global pool\).*'Mixed_7c'/);
    const tm = await replaceHead(base, { head: 4, cutAt: 'Mixed_6e', dropoutKeepProb: 0.8 });
    const g = tm.model.graph;
    expect(tm.headScopes).toEqual(['InceptionV3/Logits']);
    expect(g.nodes.some((n) => n.name.includes('Mixed_7'))).toBe(false);
    expect([...g.params.keys()].some((p) => p.includes('Mixed_7'))).toBe(false);
    const headNodes = g.nodes.filter((n) => n.name.startsWith('InceptionV3/Logits/')).map((n) => `${n.op}:${n.name.slice('InceptionV3/Logits/'.length)}`);
    expect(headNodes).toEqual([
      'mean:GlobalPool',
      'dropout:Dropout_1b/Dropout',
      'conv2d:Conv2d_1c_1x1/Conv2D',
      'bias_add:Conv2d_1c_1x1/BiasAdd',
      'squeeze:SpatialSqueeze',
      'softmax:Predictions/Softmax',
    ]);
    const c = base.graph.shapeOf(base.graph.endPoint('Mixed_6e'))[3];
    expect(g.param(LOGITS_W).shape).toEqual([1, 1, c, 4]);
    // retrain.py's final layer: truncated normal, stddev 0.001.
    expect(Math.max(...g.param(LOGITS_W).data.map(Math.abs))).toBeLessThanOrEqual(0.002);
    expect(g.param('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights').data).toBe(base.graph.param('InceptionV3/Mixed_6e/Branch_0/Conv2d_0a_1x1/weights').data);
    const out = await tm.model.predict(randomArray(2 * 75 * 75 * 3, 6));
    expect(tm.model.shapeOf('Predictions', 2)).toEqual([2, 4]);
    expect(Object.values(out).every((v) => v.length === 8)).toBe(true);
    tm.model.dispose();
  });

  it('views an [N, C] cut as [N, 1, 1, C], and round-trips a cut sigmoid model through a model file', async () => {
    const base = imported();
    const build = cutAndAppendHead(base.build, { cutAt: 'InceptionV3/Logits/SpatialSqueeze', head: { kind: 'sigmoid', classes: 2 }, scope: 'NewHead' });
    const g = build(1);
    expect(g.nodes.find((n) => n.name === 'NewHead/Reshape')?.shape).toEqual([1, 1, 1, 10]);
    expect(g.shapeOf(g.endPoint('Predictions'))).toEqual([1, 1]);

    const tm = await replaceHead(base, { head: 'sigmoid', cutAt: 'PreLogits', scope: 'NewHead' });
    expect(tm.headScopes).toEqual(['NewHead']);
    const w = 'NewHead/Conv2d_1c_1x1/weights';
    tm.model.graph.param(w).data = randomArray(tm.model.graph.param(w).size, 9, -0.1, 0.1);
    tm.model.parametersChanged();
    const x = randomArray(2 * 75 * 75 * 3, 10);
    const r = await tm.model.predict(x, { outputs: ['Logits', 'Predictions'] });
    for (let i = 0; i < 2; i++) expect(r.Predictions[i]).toBeCloseTo(1 / (1 + Math.exp(-r.Logits[i])), 5);
    const path = join(dir, 'cut.safetensors');
    expect(saveTransferModel(tm, path).architecture).toBe(GRAPH_ARCHITECTURE);
    const loaded = await loadModel(path);
    expect(loaded.probabilities).toBe(true);
    const p = (await loaded.model.predict(x, { outputs: [loaded.output] }))[loaded.output];
    expect(p.length).toBe(4);
    for (let i = 0; i < 2; i++) expect(p[2 * i + 1]).toBeCloseTo(r.Predictions[i], 5);
    loaded.model.dispose();
    tm.model.dispose();
  });

  const FROZEN = join(SHARED_DIR, 'fixtures/tf-mobilenet/models/mobilenet_v1_0.25_128/frozen_graph.pb');
  it.skipIf(!hasShared || !existsSync(FROZEN))('gives the MobileNet fixture a 22-class head at its pooled features', async () => {
    const opened = openModel(FROZEN);
    const tm = await replaceHead(opened, { head: 22, cutAt: 'MobilenetV1/Logits/AvgPool_1a/AvgPool' });
    const g = tm.model.graph;
    expect(tm.headScopes).toEqual(['MobilenetV1/Logits']);
    expect(g.param('MobilenetV1/Logits/Conv2d_1c_1x1/weights').shape).toEqual([1, 1, 256, 22]);
    expect(g.nodes.some((n) => n.name === 'MobilenetV1/Predictions/Reshape')).toBe(false);
    const p = (await tm.model.predict(randomArray(128 * 128 * 3, 11), { outputs: ['Predictions'] })).Predictions;
    expect(p.length).toBe(22);
    tm.model.dispose();
  });
  if (!hasShared) it.skip(sharedMissingMessage('the MobileNet head test'), () => {});
});
