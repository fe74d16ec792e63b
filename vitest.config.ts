import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Run by npm run check:strangled, in a copy of the tree without legacy/ (test/strangled/check-strangled.ts).
    exclude: [...configDefaults.exclude, 'test/strangled/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: more parallel files only queue behind the database.
    maxWorkers: 2,
  },
});
