import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { startCliService } from '../helpers/cli-service.ts';
import { TEST_HV_KEYS, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { freePort } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/** `strangler serve router` runs in any stage: before event-writes is full it polls MySQL (the legacy source). */
describe('strangler serve router', () => {
  let t: TestDatabase;
  let region: string;

  beforeAll(async () => {
    t = await createTestDatabase('serve_router');
    region = (await seedWorld(t.db, { hypervisors: 4, regions: 1 })).regions[0]!.slug;
  });
  afterAll(() => t?.drop());

  it('serves a legacy-stage router (no Harpoon configured): ready, its source MySQL', async () => {
    const port = await freePort();
    const router = await startCliService<{ service: string }>(['serve', 'router', '--json'], {
      ROUTER_MYSQL_URL: formatMysqlUrl(t.service('event_router')),
      ROUTER_REGION: region,
      PORT: String(port),
      ROUTER_HV_KEYS: JSON.stringify(TEST_HV_KEYS),
    });
    try {
      expect(router.info.service).toBe('router');
      const url = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 30_000);
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^router_event_source\{source="mysql"\} 1$/m);
    } finally {
      expect(await router.stop()).toBe(0);
    }
  }, 90_000);
});
