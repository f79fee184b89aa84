import { defineConfig } from 'vitest/config';

// One run covers every tier. Unit tests are fast; integration and e2e tiers (test/e2e/, test/integration/)
// start real processes, so they get longer timeouts and run one file at a time per worker.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
