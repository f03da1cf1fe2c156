// For test files that tune or choose kernel variants: each test gets its own tuning cache file and a
// chooser with nothing in memory, and the environment variables such tests set are put back after it;
// and a small trainable model (conv + training batchnorm + conv logits) whose step tunes every family.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { Runtime } from '../src/gpu/runtime.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { Model } from '../src/graph/model.ts';
import { forgetTuning } from '../src/kernels/choice.ts';

const RESTORED = ['INCEPT_TUNING_CACHE', 'INCEPT_ADAPTER_CLASS', 'INCEPT_AUTOTUNE'];

/** Registers the hooks; the function returned gives the current test's temporary folder (the cache file is in it). */
export function isolateTuning(prefix: string): () => string {
  let dir = '';
  const saved = { ...process.env };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    process.env.INCEPT_TUNING_CACHE = join(dir, 'tuning.json');
    forgetTuning();
  });
  afterEach(() => {
    for (const k of RESTORED) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    forgetTuning();
  });
  return () => dir;
}

/** 5x5x8 input, conv + batchnorm + ReLU, a 5x5 VALID conv to 3 logits: every tunable family in a few ms. */
export function convBnLogitsModel(rt: Runtime): Model {
  return new Model(rt, (batch) => {
    const b = new GraphBuilder('Net', { seed: 4 });
    const x = b.input('input', [batch, 5, 5, 8]);
    const y = b.convBnRelu('Conv2d_1a_3x3', x, 8, 3, { padding: 'SAME' });
    const logits = b.conv2d('Logits', y, 3, 5, { padding: 'VALID', batchNorm: false, activation: 'none' });
    b.output(b.endPoint('Logits', b.squeeze('SpatialSqueeze', logits, [1, 2])));
    return b.graph;
  });
}
