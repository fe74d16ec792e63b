import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { dropDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { readMysqlSnapshot } from '../../lib/metrics/mysql-snapshot.ts';
import { loadCommands } from '../../cli/main.ts';
import { runCli } from '../helpers/cli.ts';

describe('the strangler command', () => {
  const database = uniqueDatabaseName('t_cli');
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    env = { MYSQL_URL: formatMysqlUrl({ ...inject('dbAdmin'), database }) };
  });
  afterAll(() => dropDatabase(inject('dbAdmin'), database));

  it('lists its verbs, and answers --help for every one', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of await loadCommands()) {
      expect(top.stdout).toContain(cmd.name);
      const help = await runCli([cmd.name, '--help']);
      expect(help.code, cmd.name).toBe(0);
      expect(help.stdout).toMatch(/^Usage: strangler /);
      expect(help.stdout).toContain('--json');
    }
    // One process per verb, each loading the CLI (about 4 s on a busy 2-core machine).
  }, 180_000);

  it('exits 2 with a pointer to --help on bad usage', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const badOption = await runCli(['db', 'migrate', '--nope']);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain('strangler db --help');
    const badValue = await runCli(['db', 'seed', '--hypervisors', 'many']);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain('--hypervisors must be an integer');
    const badName = await runCli(['db', 'migrate', '--database', 'x; DROP DATABASE mysql']);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('--database must be');
    const tooMany = await runCli(['fleet', '--per-process', '20000']);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain('--per-process must be an integer from 1 to 15000');
  });

  it('migrates, seeds, refuses to seed twice, and runs a fleet that the server can see', async () => {
    const migrate = await runCli(['db', 'migrate', '--json'], { env });
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(JSON.parse(migrate.stdout)).toMatchObject({ database, migrated: true });

    const seed = await runCli(['db', 'seed', '--hypervisors', '40', '--regions', '2', '--seed', '3', '--json'], { env });
    expect(seed.code, seed.stderr).toBe(0);
    const seeded = JSON.parse(seed.stdout);
    expect(seeded).toMatchObject({ database, hypervisors: 40, regions: ['nyc1', 'sfo1'], seed: 3 });
    const db = createKnex({ ...inject('dbAdmin'), database }, { poolMax: 1 });
    try {
      expect(Number((await db('servers').count({ n: '*' }))[0]!.n)).toBe(40);
      expect(Number((await db('droplets').count({ n: '*' }))[0]!.n)).toBe(seeded.droplets);

      const again = await runCli(['db', 'seed', '--json'], { env });
      expect(again.code).toBe(3);
      expect(again.stderr).toContain('DB_ERR_NOT_EMPTY');

      const fleet = runCli(['fleet', '--seconds', '4', '--poll-min', '200', '--poll-max', '400', '--json'], { env });
      let seen = 0;
      for (let i = 0; i < 40 && seen < 40; i++) {
        await new Promise((r) => setTimeout(r, 200));
        seen = (await readMysqlSnapshot(db, { database })).byUser.dobe ?? 0;
      }
      expect(seen).toBe(40);
      const result = await fleet;
      expect(result.code, result.stderr).toBe(0);
      const totals = JSON.parse(result.stdout);
      expect(totals.agents).toBe(40);
      expect(totals.godQueries).toBeGreaterThanOrEqual(40);
      expect(totals.errors).toBe(0);
    } finally {
      await db.destroy();
    }
  });

  it('ranks with Scheduler V1 from stdin', async () => {
    const input = {
      servers: [{ id: 1, name: 'hv1', region_id: 1, cpus: 24, memory: 131072, disk: 2000, vmcount: 1, memfree: 9000, diskfree_actual: 900, error_count: 0, state: '' }],
      request: { customer_id: 1, region_id: 1, size: { slug: '1gb', memory: 1024, vcpus: 1, disk: 30 } },
      busy: {},
      user_droplets: {},
    };
    const out = await runCli(['scheduler', 'v1-rank', '--json'], { input: JSON.stringify(input) });
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout).decision).toEqual({ action: 'place', server_id: 1, server_name: 'hv1', reason: 'best-memfree' });
    const bad = await runCli(['scheduler', 'v1-rank'], { input: '{"servers": [' });
    expect(bad.code).toBe(2);
  });
});
