// Who owns which buffer (src/graph/param_store.ts): programs bind the model's parameter tensors,
// batchnorm is refolded on the GPU when its statistics move, and nothing keeps a buffer that went
// back to a pool. The reference for "right" is a fresh load of the saved model file: a second model
// that never shared a buffer with the first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateLesionDataset } from '../src/demo/lesions.ts';
import { saliency } from '../src/explain/saliency.ts';
import { closeRuntime } from '../src/gpu/runtime.ts';
import { loadModel } from '../src/import/load-model.ts';
import type { AugmentOptions } from '../src/train/augment.ts';
import { readDataset, splitDataset } from '../src/train/dataset.ts';
import { RUN_FILES, fineTune, validate } from '../src/train/finetune.ts';
import { randomInception, replaceHead } from '../src/train/head.ts';
import { Trainer } from '../src/train/trainer.ts';
import { expectClose, randomArray } from './helpers.ts';

afterAll(closeRuntime);

const THIN = { inputSize: 75, depthMultiplier: 0.1, auxLogits: false } as const;
const NO_AUGMENT: AugmentOptions = { flipLeftRight: 0, color: 'none', areaRange: [1, 1], aspectRatioRange: [1, 1] };
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'incept-ownership-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parameters shared by every program of a model', () => {
  it('a saliency map and predictions after fineTune equal those of a fresh load of the fine-tuned model; validation saw the live weights', async () => {
    const ds = generateLesionDataset({ count: 12, size: 80, seed: 5, dir: join(dir, 'data'), validationFraction: 0.34 });
    const s = splitDataset(readDataset(ds.manifest));
    const tm = await replaceHead(randomInception({ ...THIN, seed: 3 }), { head: 2, classes: s.train.classes });
    const image = randomArray(75 * 75 * 3, 17);
    // Compiled and cached before training: the buffers it binds must still be the model's after it.
    const before = await saliency(tm.model, image, { method: 'vanilla', target: 1 });
    const runDir = join(dir, 'run');
    const r = await fineTune(tm, { train: s.train, validation: s.validation }, {
      epochs: 2,
      batch: 4,
      learningRate: 0.01,
      optimizer: { kind: 'adam' },
      freeze: { kind: 'from', layer: 'Mixed_6e' },
      batchnormDecay: 0.5, // moving statistics move a lot: a stale fold would show
      augment: NO_AUGMENT,
      workers: 0,
      runDir,
    });
    const after = await saliency(tm.model, image, { method: 'vanilla', target: 1 });
    const fresh = await loadModel(join(runDir, RUN_FILES.model));
    const reference = await saliency(fresh.model, image, { method: 'vanilla', target: 1 });
    expect(maxAbsDiff(after.raw, before.raw)).toBeGreaterThan(1e-3 * maxAbs(reference.raw)); // training changed the map
    expectClose(after.raw, reference.raw, { rtol: 1e-4, atol: 1e-5 * maxAbs(reference.raw) }, 'saliency after fineTune vs a fresh load');
    expect(after.score).toBeCloseTo(reference.score, 4);

    const images = randomArray(3 * 75 * 75 * 3, 23);
    const ours = await tm.model.predict(images, { outputs: ['Logits'] });
    const theirs = await fresh.model.predict(images, { outputs: ['Logits'] });
    expectClose(ours.Logits, theirs.Logits, { rtol: 1e-4, atol: 1e-5 }, 'predict after fineTune vs a fresh load');

    // The last epoch's validation ran with the final weights, through the live parameter tensors.
    const v = await validate(fresh.model, tm, s.validation, { batch: 4, workers: 0 });
    expect(r.lastValidation!.loss).toBeCloseTo(v.loss, 4);
    fresh.model.dispose();
  });

  it('predict after trainer steps equals a fresh model given the trained values', async () => {
    const tm = await replaceHead(randomInception({ ...THIN, seed: 4 }), { head: 3, classes: ['a', 'b', 'c'] });
    const images = randomArray(4 * 75 * 75 * 3, 31);
    const before = await tm.model.predict(images, { outputs: ['Logits'] }); // a plan cached before training
    const trainer = new Trainer(tm.model, { batch: 4, optimizer: { kind: 'rmsprop' }, learningRate: 0.01, training: { batchnormDecay: 0.5 } });
    for (let i = 0; i < 3; i++) await trainer.trainStep(images, Int32Array.from([0, 1, 2, 0]));
    const live = await tm.model.predict(images, { outputs: ['Logits'] });
    await trainer.syncToHost();
    trainer.dispose();
    // A second model built from the host copy: its own parameter tensors, folds and plans.
    const fresh = await replaceHead(randomInception({ ...THIN, seed: 4 }), { head: 3, classes: ['a', 'b', 'c'] });
    for (const p of fresh.model.graph.params.values()) p.data = tm.model.graph.param(p.name).data.slice();
    fresh.model.parametersChanged();
    const reference = await fresh.model.predict(images, { outputs: ['Logits'] });
    expect(maxAbsDiff(live.Logits, before.Logits)).toBeGreaterThan(1e-3);
    expectClose(live.Logits, reference.Logits, { rtol: 1e-4, atol: 1e-5 }, 'predict after trainer steps vs a fresh model');
    fresh.model.dispose();
    tm.model.dispose();
  });
});

describe('caches that stay bounded', () => {
  it('a model keeps at most 8 compiled plans; an evicted batch size recompiles and gives the same result', async () => {
    const tm = await replaceHead(randomInception({ ...THIN, seed: 6 }), { head: 2, classes: ['a', 'b'] });
    const per = 75 * 75 * 3;
    const images = randomArray(10 * per, 41);
    const first = await tm.model.predict(images.subarray(0, per), { outputs: ['Logits'] });
    for (let n = 2; n <= 10; n++) {
      await tm.model.predict(images.subarray(0, n * per), { outputs: ['Logits'] });
      expect(tm.model.planCount).toBeLessThanOrEqual(8);
    }
    const again = await tm.model.predict(images.subarray(0, per), { outputs: ['Logits'] }); // batch 1 was evicted
    expect(Array.from(again.Logits)).toEqual(Array.from(first.Logits));
    tm.model.dispose();
  });
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
