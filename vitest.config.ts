import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/each-test.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // Two cores: files run one after another, so each test's timing is not at the mercy of another's.
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
