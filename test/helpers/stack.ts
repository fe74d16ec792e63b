import type { SeedData } from '../../stack/seed/generate.ts';
import type { LegacyStackOptions } from '../../stack/stack.ts';
import { TEST_HV_KEYS, TEST_PASSWORDS, type TestDatabase } from './database.ts';

/**
 * The legacy stack's options for a test database and its seed: the test secrets, one agent per seeded
 * host, polling every 200–400 ms; `extra` adds or overrides (a stage's pieces, a control port).
 *
 * @example
 *   stack = await startLegacyStack(testStackOptions(t, seed, { eventRouter: { … } }));
 */
export function testStackOptions(t: TestDatabase, seed: SeedData, extra: Partial<LegacyStackOptions> = {}): LegacyStackOptions {
  return {
    server: t.server,
    database: t.name,
    passwords: TEST_PASSWORDS,
    hypervisorKeys: TEST_HV_KEYS,
    serverIds: seed.servers.map((s) => s.id),
    pollIntervalMs: { min: 200, max: 400 },
    schedulerPollMs: 200,
    workMs: 5,
    ...extra,
  };
}
