import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * The suite's config as Stryker runs it (stryker.config.mjs chooses the test files): the tests it
 * runs hold a few dozen connections, so the machine's own MariaDB will do where the whole suite
 * needs a throwaway server of 800. The global setup is replaced, not merged: mergeConfig appends
 * arrays, and the suite's setup would still start (and, its handle overwritten, never stop) a
 * throwaway server per test runner.
 */
export default defineConfig({ ...base, test: { ...base.test, globalSetup: ['test/helpers/mutation-global-setup.ts'] } });
