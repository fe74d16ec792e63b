import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * The suite's config as Stryker runs it (stryker.config.mjs chooses the test files): the tests it
 * runs hold a few dozen connections, so the machine's own MariaDB will do where the whole suite
 * needs a throwaway server of 800.
 */
export default mergeConfig(base, defineConfig({ test: { globalSetup: ['test/helpers/mutation-global-setup.ts'] } }));
