// loadIntoGraph on a thin Inception v3 from synthetic TF-Slim checkpoints written by our own V2
// and V1 writers: a fine-tuning start (new head: exclude scopes), missing and unexpected variables,
// optimizer slots, shape mismatches, moving averages.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inceptionV3 } from '../src/graph/models/inception_v3.ts';
import { CheckpointMismatchError, describeLoad, loadIntoGraph, readCheckpoint } from '../src/import/load.ts';
import type { Checkpoint } from '../src/import/tf-checkpoint.ts';
import { writeCheckpointV1, writeCheckpointV2 } from '../src/import/tf-checkpoint-write.ts';
import { randomArray } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'incept-ckpt-v3-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Thin and small: every layer and name of the real model, 0.3M parameters. 107 is the smallest
// input with the aux head.
const THIN = { depthMultiplier: 0.1, inputSize: 107 };
const DROPPED = 'InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/BatchNorm/moving_mean';

/** An "ImageNet" checkpoint of the thin model (1001 classes), as TF-Slim training would leave it. */
function imagenetCheckpoint(): Checkpoint {
  const src = inceptionV3({ ...THIN, numClasses: 1001 });
  const ckpt: Checkpoint = new Map();
  let seed = 1;
  for (const p of src.params.values()) {
    if (p.name === DROPPED) continue;
    ckpt.set(p.name, { dtype: 'float32', shape: [...p.shape], data: randomArray(p.size, seed++) });
  }
  const w = 'InceptionV3/Conv2d_1a_3x3/weights';
  ckpt.set(`${w}/RMSProp`, { dtype: 'float32', shape: ckpt.get(w)!.shape, data: randomArray(ckpt.get(w)!.data.length, 99) });
  ckpt.set(`${w}/RMSProp_1`, { dtype: 'float32', shape: ckpt.get(w)!.shape, data: randomArray(ckpt.get(w)!.data.length, 98) });
  ckpt.set(`${w}/ExponentialMovingAverage`, { dtype: 'float32', shape: ckpt.get(w)!.shape, data: randomArray(ckpt.get(w)!.data.length, 97) });
  ckpt.set('global_step', { dtype: 'int64', shape: [], data: BigInt64Array.of(1234567n) });
  ckpt.set('InceptionV3/Extra/weights', { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2, 3) });
  return ckpt;
}

const written = (() => {
  const ckpt = imagenetCheckpoint();
  const v2 = join(tmp, 'v2', 'model.ckpt');
  const v1 = join(tmp, 'v1', 'inception_v3.ckpt');
  writeCheckpointV2(v2, ckpt);
  writeCheckpointV1(v1, ckpt);
  return { ckpt, v2, v1 };
})();

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const HEAD = ['InceptionV3/Logits', 'InceptionV3/AuxLogits'];

describe('loadIntoGraph: thin Inception v3 from a synthetic TF-Slim checkpoint', () => {
  it('the V2 and V1 files read back to the same variables', () => {
    const a = readCheckpoint(written.v2);
    const b = readCheckpoint(written.v1);
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [k, t] of a) expect(bits(t.data as Float32Array).equals(bits(b.get(k)!.data as Float32Array)), k).toBe(true);
  });

  it('a new 7-class head without exclude scopes: an error naming the variables and both shapes; nothing loaded', () => {
    const g = inceptionV3({ ...THIN, numClasses: 7 });
    const before = g.param('InceptionV3/Conv2d_1a_3x3/weights').data.slice();
    let err: unknown;
    try {
      loadIntoGraph(g, readCheckpoint(written.v2));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    const e = err as CheckpointMismatchError;
    expect(e.message).toMatch(/'InceptionV3\/Logits\/Conv2d_1c_1x1\/weights' is \[1,1,\d+,1001\] in the checkpoint but \[1,1,\d+,7\] in the graph/);
    expect(e.message).toMatch(/'InceptionV3\/AuxLogits\/Conv2d_2b_1x1\/biases' is \[1001\] in the checkpoint but \[7\]/);
    expect(e.mismatches.map((m) => m.name).sort()).toEqual([
      'InceptionV3/AuxLogits/Conv2d_2b_1x1/biases',
      'InceptionV3/AuxLogits/Conv2d_2b_1x1/weights',
      'InceptionV3/Logits/Conv2d_1c_1x1/biases',
      'InceptionV3/Logits/Conv2d_1c_1x1/weights',
    ]);
    expect(bits(g.param('InceptionV3/Conv2d_1a_3x3/weights').data).equals(bits(before))).toBe(true);
  });

  it("with TF-Slim's checkpoint_exclude_scopes: body loaded bit for bit, head kept, lists of missing/unexpected/ignored", () => {
    const g = inceptionV3({ ...THIN, numClasses: 7 });
    const ckpt = readCheckpoint(written.v2);
    const headBefore = g.param('InceptionV3/Logits/Conv2d_1c_1x1/weights').data.slice();
    const r = loadIntoGraph(g, ckpt, { exclude: HEAD });

    const headParams = [...g.params.keys()].filter((n) => HEAD.some((s) => n.startsWith(s)));
    expect(headParams.length).toBe(12);
    expect(r.excluded).toEqual([...headParams].sort());
    expect(r.missing).toEqual([DROPPED]);
    expect(r.unexpected).toEqual(['InceptionV3/Extra/weights']);
    expect(r.ignored.sort()).toEqual([
      'InceptionV3/Conv2d_1a_3x3/weights/ExponentialMovingAverage',
      'InceptionV3/Conv2d_1a_3x3/weights/RMSProp',
      'InceptionV3/Conv2d_1a_3x3/weights/RMSProp_1',
      'global_step',
    ]);
    expect(r.loaded.length).toBe(g.params.size - headParams.length - 1);
    expect(r.shapeMismatches.map((m) => m.name).sort()).toEqual([
      'InceptionV3/AuxLogits/Conv2d_2b_1x1/biases',
      'InceptionV3/AuxLogits/Conv2d_2b_1x1/weights',
      'InceptionV3/Logits/Conv2d_1c_1x1/biases',
      'InceptionV3/Logits/Conv2d_1c_1x1/weights',
    ]);
    for (const name of r.loaded) expect(bits(g.param(name).data).equals(bits(ckpt.get(name)!.data as Float32Array)), name).toBe(true);
    // Excluded and missing parameters keep their initial values (moving_mean starts at zero).
    expect(bits(g.param('InceptionV3/Logits/Conv2d_1c_1x1/weights').data).equals(bits(headBefore))).toBe(true);
    expect(g.param(DROPPED).data.every((v) => v === 0)).toBe(true);
    expect(describeLoad(r)).toMatch(/^loaded \d+; missing 1: .*moving_mean; unexpected 1: InceptionV3\/Extra\/weights; excluded 12; ignored 4/);
  });

  it("onShapeMismatch 'skip' reports the mismatches and loads everything else", () => {
    const g = inceptionV3({ ...THIN, numClasses: 7 });
    const r = loadIntoGraph(g, readCheckpoint(written.v1), { onShapeMismatch: 'skip' });
    expect(r.shapeMismatches.length).toBe(4);
    expect(r.shapeMismatches.find((m) => m.name === 'InceptionV3/Logits/Conv2d_1c_1x1/biases')).toEqual({
      name: 'InceptionV3/Logits/Conv2d_1c_1x1/biases',
      graph: [7],
      checkpoint: [1001],
    });
    expect(r.loaded).toContain('InceptionV3/AuxLogits/Conv2d_1b_1x1/weights'); // same shape in both heads
    expect(r.excluded).toEqual([]);
  });

  it('the same-shaped ImageNet graph loads everything; moving averages on request', () => {
    const ckpt = readCheckpoint(written.v2);
    const g = inceptionV3({ ...THIN, numClasses: 1001 });
    const r = loadIntoGraph(g, ckpt);
    expect(r.missing).toEqual([DROPPED]);
    expect(r.shapeMismatches).toEqual([]);
    const w = 'InceptionV3/Conv2d_1a_3x3/weights';
    expect(bits(g.param(w).data).equals(bits(ckpt.get(w)!.data as Float32Array))).toBe(true);
    const ema = loadIntoGraph(g, ckpt, { useMovingAverages: true });
    expect(bits(g.param(w).data).equals(bits(ckpt.get(`${w}/ExponentialMovingAverage`)!.data as Float32Array))).toBe(true);
    expect(ema.ignored).not.toContain(`${w}/ExponentialMovingAverage`);
  });

  it('exclude scopes match by prefix, as in TF-Slim (Mixed_7 covers Mixed_7a..c)', () => {
    const g = inceptionV3({ ...THIN, numClasses: 1001 });
    const r = loadIntoGraph(g, readCheckpoint(written.v2), { exclude: ['InceptionV3/Mixed_7', ' '] });
    expect(r.excluded.length).toBeGreaterThan(0);
    expect(r.excluded.every((n) => n.startsWith('InceptionV3/Mixed_7'))).toBe(true);
    expect(r.missing).toEqual([]); // the dropped variable is under Mixed_7c
    expect(r.loaded.some((n) => n.startsWith('InceptionV3/Mixed_7'))).toBe(false);
  });
});
