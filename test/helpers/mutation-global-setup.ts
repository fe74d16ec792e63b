import type { TestProject } from 'vitest/node';
import { provideServer } from './global-setup.ts';

export { teardown } from './global-setup.ts';

/** Under Stryker (vitest.mutation.config.ts) only the listed module tests run: a few dozen connections. */
export async function setup(project: TestProject): Promise<void> {
  await provideServer(project, 100);
}
