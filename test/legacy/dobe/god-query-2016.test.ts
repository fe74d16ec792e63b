import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from 'mysql2/promise';
import { openConnection } from '../../../lib/db/connection.ts';
import { GOD_QUERY_2016, GOD_QUERY_2016_TABLES } from '../../../legacy/dobe/god-query-2016.ts';
import { godQueryParams, godQuerySql } from '../../../legacy/dobe/god-query.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent, seedWorld } from '../../helpers/seeded.ts';

/** The columns both variants answer (contracts/agent-event.ts), in one comparable shape. */
const AGENT_EVENT_COLUMNS = [
  'event_id', 'event_type', 'event_status', 'event_args', 'droplet_id', 'droplet_name', 'droplet_status', 'customer_id',
  'size_slug', 'size_memory', 'size_vcpus', 'size_disk', 'image_slug', 'server_id', 'server_name', 'ssh_fingerprints',
  'features', 'ip_addresses', 'server_running_events', 'customer_droplets_on_server',
] as const;

function agentEvent(row: RowDataPacket): Record<string, unknown> {
  return Object.fromEntries(AGENT_EVENT_COLUMNS.map((c) => [c, row[c] === null ? null : String(row[c])]));
}

describe('the 2016 god query', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('god_query_2016');
    await seedWorld(t.db, { hypervisors: 12, regions: 2 });
  });
  afterAll(() => t.drop());

  it('reads 18 tables with no index hints and no LIMIT, as the write-ups describe it', () => {
    expect(GOD_QUERY_2016.split('\n').length).toBeGreaterThan(150);
    expect(new Set(GOD_QUERY_2016_TABLES).size).toBe(18);
    for (const table of GOD_QUERY_2016_TABLES) expect(GOD_QUERY_2016).toMatch(new RegExp(`(FROM|JOIN) ${table}\\b`));
    expect(GOD_QUERY_2016).not.toMatch(/FORCE INDEX|USE INDEX|\bLIMIT\s+\d/i);
    expect(godQuerySql('optimized')).toMatch(/FORCE INDEX/);
    expect(godQuerySql('2016')).toBe(GOD_QUERY_2016);
  });

  it('answers the same events as the optimized one for every host and status, with the droplet context besides', async () => {
    const droplets = await t.db('droplets').select('id', 'server_id', 'region_id').limit(6);
    for (const [k, d] of droplets.entries()) {
      await insertEvent(t.db, { type: 'reboot', region_id: d.region_id, server_id: d.server_id, droplet_id: d.id, status: k % 3 === 0 ? 'running' : 'pending' });
    }
    await insertEvent(t.db, { type: 'pdu_reboot', region_id: droplets[0]!.region_id, server_id: droplets[0]!.server_id });
    const tagged = await t.db('droplet_tags').join('droplets', 'droplets.id', 'droplet_tags.droplet_id').whereNotNull('droplets.server_id').first('droplets.id', 'droplets.server_id', 'droplets.region_id');
    expect(tagged, 'the seed tags some droplets').toBeTruthy();
    await insertEvent(t.db, { type: 'reboot', region_id: tagged.region_id, server_id: tagged.server_id, droplet_id: tagged.id });

    const conn = await openConnection(t.service('dobe'));
    try {
      const servers = (await t.db('servers').select('id')).map((s: { id: number }) => s.id);
      let compared = 0;
      for (const serverId of servers) {
        for (const status of ['pending', 'running'] as const) {
          const [optimized] = await conn.query<RowDataPacket[]>(godQuerySql('optimized'), godQueryParams(serverId, status));
          const [faithful] = await conn.query<RowDataPacket[]>(godQuerySql('2016'), godQueryParams(serverId, status));
          expect(faithful.map(agentEvent), `server ${serverId} ${status}`).toEqual(optimized.map(agentEvent));
          compared += optimized.length;
        }
      }
      expect(compared).toBeGreaterThanOrEqual(8);
      const [[row]] = await conn.query<RowDataPacket[]>(godQuerySql('2016'), godQueryParams(tagged.server_id));
      const mine = (await conn.query<RowDataPacket[]>(godQuerySql('2016'), godQueryParams(tagged.server_id)))[0].find((r) => r.droplet_id === tagged.id);
      expect(row).toBeDefined();
      expect(mine?.tags).toMatch(/^[a-z0-9-]+(,[a-z0-9-]+)*$/);
    } finally {
      await conn.end();
    }
  });
});
