import type { TestProject } from 'vitest/node';
import { provideServer } from '../helpers/global-setup.ts';

export { teardown } from '../helpers/global-setup.ts';

/** The post-migration smoke test holds a few dozen connections: the machine's own server will do. */
export async function setup(project: TestProject): Promise<void> {
  await provideServer(project, 100);
}
