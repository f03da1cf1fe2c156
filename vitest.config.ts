import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU process per file is plenty: lavapipe already uses every core.
    fileParallelism: false,
    pool: 'forks',
    // Deterministic runs: no kernel tuning on first use (on by default on GPUs) and no tuning cache
    // of the user's; test/tuner.test.ts tunes with its own temporary cache.
    env: {
      INCEPT_AUTOTUNE: process.env.INCEPT_AUTOTUNE ?? '0',
      INCEPT_TUNING_CACHE: process.env.INCEPT_TUNING_CACHE ?? 'off',
    },
  },
});
