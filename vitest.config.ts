import { defineConfig } from 'vitest/config';

/** Settings of every suite that talks to the real servers: the integration tests and the fault cases. */
export const serverSuite = {
  globalSetup: ['test/support/global-setup.ts'],
  setupFiles: ['test/support/each-test.ts'],
  testTimeout: 180_000,
  hookTimeout: 180_000,
  // Two cores: files run one after another, so each test's timing is not at the mercy of another's.
  poolOptions: { forks: { singleFork: true } },
};

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        // The quick fault cases run here too; all of them, long ones included, run in `npm run faults`.
        test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/faults/quick/**/*.test.ts'], ...serverSuite },
      },
    ],
  },
});
