import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU process per file is plenty: lavapipe already uses every core.
    fileParallelism: false,
    pool: 'forks',
  },
});
