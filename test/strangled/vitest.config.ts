import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** npm run check:strangled runs this in a copy of the tree without legacy/ (check-strangled.ts). */
export default defineConfig({
  root: fileURLToPath(new URL('../../', import.meta.url)),
  test: {
    include: ['test/strangled/**/*.test.ts'],
    globalSetup: ['test/strangled/global-setup.ts'],
    pool: 'forks',
    testTimeout: 90_000,
    hookTimeout: 120_000,
  },
});
