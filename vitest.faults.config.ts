import { defineConfig } from 'vitest/config';
import { serverSuite } from './vitest.config.js';

/** `npm run faults`: every fault-injection case against the real servers, the long ones and the soak included. */
export default defineConfig({
  test: { name: 'faults', include: ['test/faults/**/*.test.ts'], ...serverSuite, testTimeout: 1_800_000 },
});
