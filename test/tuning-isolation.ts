// For test files that tune or choose kernel variants: each test gets its own tuning cache file and a
// chooser with nothing in memory, and the environment variables such tests set are put back after it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
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
