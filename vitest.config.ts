import { defineConfig } from 'vitest/config';

// Tests are grouped as unit/ (one module, in-process), e2e/ (real processes and real libp2p peers on loopback)
// and sim/ (many in-process peers). They assert correctness only; speed lives in bench/.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
