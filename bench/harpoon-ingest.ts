/**
 * The ingest half of `npm run bench:harpoon`: what the server reaches with
 * plain INSERTs (single-row over C connections; multi-row of B rows on one
 * connection, the physical limit), and what Harpoon reaches in front of it.
 * Each row carries the server's own counters over its window (SHOW GLOBAL
 * STATUS deltas), so group commit is judged by what the server did: log
 * writes and fsyncs per commit, rows per commit.
 */
import { Agent, request } from 'node:http';
import mysql from 'mysql2/promise';
import type { DbConfig } from '../lib/db/config.ts';
import { logPayload } from '../harpoon/store.ts';
import type { HarpoonEvent } from '../harpoon/types.ts';
import { cpuUs } from './proc-stats.ts';

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const STATUS = ['Com_insert', 'Com_commit', 'Handler_commit', 'Innodb_log_writes', 'Innodb_data_fsyncs'] as const;
type Status = Record<(typeof STATUS)[number], number>;

async function serverStatus(admin: mysql.Connection): Promise<Status> {
  const [rows] = await admin.query('SHOW GLOBAL STATUS WHERE Variable_name IN (?)', [STATUS]);
  const out = Object.fromEntries(STATUS.map((k) => [k, 0])) as Status;
  for (const r of rows as Array<{ Variable_name: string; Value: string }>) out[r.Variable_name as keyof Status] = Number(r.Value);
  return out;
}

/** What the server did for `events` events between two readings (every other client of the server included). */
function serverDelta(a: Status, b: Status, events: number, autocommit: boolean) {
  const d = Object.fromEntries(STATUS.map((k) => [k, b[k] - a[k]])) as Status;
  // Transactions: plain autocommit INSERTs are one each (Com_insert); Harpoon's end in COMMIT (Com_commit).
  // Handler_commit counts statement-level commits too, so it is shown but not divided by.
  const commits = Math.max(1, autocommit ? d.Com_insert : d.Com_commit);
  return {
    ...d,
    transactions: commits,
    events_per_commit: round(events / commits, 2),
    log_writes_per_commit: round(d.Innodb_log_writes / commits, 3),
    fsyncs_per_commit: round(d.Innodb_data_fsyncs / commits, 3),
    fsyncs_per_1000_events: round((d.Innodb_data_fsyncs / Math.max(1, events)) * 1000, 2),
  };
}

async function countEvents(admin: mysql.Connection): Promise<number> {
  const [rows] = await admin.query('SELECT COUNT(*) AS n FROM events');
  return Number((rows as Array<{ n: number }>)[0]!.n);
}

async function userWrites(admin: mysql.Connection, user: string): Promise<number> {
  const [rows] = await admin.query('SELECT UPDATE_COMMANDS AS u FROM information_schema.USER_STATISTICS WHERE USER = ?', [user]);
  return Number((rows as Array<{ u: number }>)[0]?.u ?? 0);
}

/**
 * Plain INSERTs, autocommit, over `connections` connections for `seconds`,
 * `rows` rows per statement.
 */
async function plainInserts(db: DbConfig, connections: number, rows: number, seconds: number, regionIds: number[]): Promise<void> {
  const conns = await Promise.all(Array.from({ length: connections }, () => mysql.createConnection({ ...db, timezone: 'Z' })));
  const end = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    conns.map(async (c, k) => {
      while (Date.now() < end) {
        const values = Array.from({ length: rows }, (_, j) => ['create', 'pending', regionIds[(n + j + k) % regionIds.length], new Date()]);
        await c.query('INSERT INTO events (type, status, region_id, created_at) VALUES ?', [values]);
        n += rows;
      }
    }),
  );
  await Promise.all(conns.map((c) => c.end()));
}

/**
 * Harpoon's own SQL for a batch of `rows` creates, with no HTTP and no Node
 * service above it, on one connection for `seconds`: the same two round
 * trips a creates-only group commit sends (harpoon/write-batch.ts), the same
 * columns, and a log payload made by the same function. What the server
 * reaches for the rows Harpoon writes: each event is two rows (events and
 * event_log), so this is the raw limit of the same work, where the plain
 * multi-row row is the limit of one narrow row per event.
 */
async function harpoonStatements(db: DbConfig, rows: number, seconds: number, regionIds: number[], regionSlugs: string[]): Promise<void> {
  const c = await mysql.createConnection({ ...db, timezone: 'Z', multipleStatements: true });
  const end = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < end) {
    const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
    const batch = Array.from({ length: rows }, (_, j) => (n + j) % regionIds.length);
    const [result] = await c.query(
      'BEGIN;\nINSERT INTO events (type, status, region_id, server_id, droplet_id, customer_id, args, message, harpoon_key, created_at, available_at) VALUES ? RETURNING id',
      [batch.map((r) => ['create', 'pending', regionIds[r], null, null, null, null, null, null, now, null])],
    );
    const ids = ((result as unknown[])[1] as Array<{ id: number }>).map((r) => Number(r.id));
    const log = ids.map((id, j) => {
      const r = batch[j]!;
      const event: HarpoonEvent = {
        id, type: 'create', status: 'pending', region: regionSlugs[r]!, region_id: regionIds[r]!, server_id: null, droplet_id: null, customer_id: null,
        args: null, message: null, key: null, created_at: `${now.replace(' ', 'T')}Z`, available_at: null, started_at: null, finished_at: null,
      };
      return [id, 'created', regionIds[r], 'create', 'pending', null, logPayload(event), now];
    });
    await c.query(
      'SELECT id FROM harpoon_lock WHERE id = 1 FOR UPDATE;\nINSERT INTO event_log (event_id, kind, region_id, type, status, server_id, payload, committed_at) VALUES ? RETURNING id;\nCOMMIT',
      [log],
    );
    n += rows;
  }
  await c.end();
}

/** HTTP clients posting to Harpoon, `inflight` requests at a time, each of `batch` events. */
async function postToHarpoon(url: string, token: string, inflight: number, batch: number, seconds: number, regions: string[]): Promise<{ events: number; refused: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: inflight });
  const end = Date.now() + seconds * 1000;
  let events = 0;
  let refused = 0;
  let seq = 0;
  const post = (body: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${url}/v1/events`, {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (Date.now() < end) {
        const items = Array.from({ length: batch }, () => ({ type: 'create', region: regions[seq++ % regions.length] }));
        const status = await post(JSON.stringify(batch === 1 ? items[0] : { events: items }));
        if (status === 201) events += batch;
        else if (status === 429) {
          refused++;
          await new Promise((r) => setTimeout(r, 100));
        } else throw new Error(`harpoon answered ${status}`);
      }
    }),
  );
  agent.destroy();
  return { events, refused };
}

/**
 * The bare node:http server (bench/http-floor.ts) under the one-event-per-request load: events (requests)
 * per second and CPU µs per request of the server and of this load generator.
 */
export async function measureHttpFloor(url: string, serverPid: number, token: string, inflight: number, seconds: number, regions: string[]) {
  const s0 = cpuUs([serverPid]);
  const c0 = cpuUs([process.pid]);
  const t0 = Date.now();
  const { events } = await postToHarpoon(url, token, inflight, 1, seconds, regions);
  const secs = (Date.now() - t0) / 1000;
  const s1 = cpuUs([serverPid]);
  const c1 = cpuUs([process.pid]);
  const per = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || events === 0 ? null : round((b - a) / events));
  return { requests_per_s: round(events / secs), requests_in_flight: inflight, cpu_us_per_request: { server: per(s0, s1), bench: per(c0, c1) } };
}

/** Group-commit counters from a replica's /metrics. */
async function batchStats(url: string): Promise<{ count: number; rows: number; seconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    count: num(/^harpoon_batch_rows_count (\S+)/m),
    rows: num(/^harpoon_batch_rows_sum (\S+)/m),
    seconds: num(/^harpoon_batch_duration_seconds_sum (\S+)/m),
  };
}

export interface IngestSetup {
  admin: mysql.Connection;
  /** Harpoon's database user, for its own statements without the service (harpoonStatements). */
  harpoonDb: DbConfig;
  /** A user with INSERT on events for the plain rows (its statements are counted by the server). */
  plainDb: DbConfig;
  plainUser: string;
  harpoonUrl: string;
  harpoonUser: string;
  token: string;
  connections: number;
  seconds: number;
  inflight: number;
  batch: number;
  regionSlugs: string[];
  regionIds: number[];
  progress(msg: string): void;
  /** Processes whose CPU time per event each row reports (/proc), by name. */
  processes: Record<string, number>;
}

/**
 * One flush setting's rows: single-row INSERTs over C connections, multi-row
 * INSERTs of B rows on one connection, Harpoon with one event per request,
 * Harpoon with B events per request; and the ratios between them.
 */
export async function measureIngest(s: IngestSetup) {
  const measure = async <T>(what: () => Promise<T>, user: string, autocommit: boolean) => {
    const rows0 = await countEvents(s.admin);
    const writes0 = await userWrites(s.admin, user);
    const st0 = await serverStatus(s.admin);
    const cpu0 = Object.entries(s.processes).map(([name, pid]) => [name, cpuUs([pid])] as const);
    const t0 = Date.now();
    const extra = await what();
    const secs = (Date.now() - t0) / 1000;
    const cpu1 = cpu0.map(([name, before]) => [name, before, cpuUs([s.processes[name]!])] as const);
    const st1 = await serverStatus(s.admin);
    const rows = (await countEvents(s.admin)) - rows0;
    const writes = (await userWrites(s.admin, user)) - writes0;
    return {
      events_per_s: round(rows / secs),
      events: rows,
      server_write_statements: writes,
      statements_per_event: round(writes / Math.max(1, rows), 4),
      server: serverDelta(st0, st1, rows, autocommit),
      // CPU time (user + system) per event, µs, by process (the bench process is the load generator).
      cpu_us_per_event: Object.fromEntries(
        cpu1.map(([name, a, b]) => [name, a === undefined || b === undefined || rows === 0 ? null : Math.round(((b - a) / rows) * 10) / 10]),
      ),
      ...extra,
    };
  };
  const harpoon = async (batch: number) => {
    // Batches: few requests in flight, so the items queued stay under Harpoon's queue bound (5000).
    const inflight = batch === 1 ? s.inflight : Math.max(1, Math.min(s.inflight, Math.floor(2500 / batch)));
    s.progress(`  through Harpoon (one replica, pool ${s.connections}), ${inflight} requests in flight of ${batch} event(s), ${s.seconds} s…`);
    const m0 = await batchStats(s.harpoonUrl);
    const row = await measure(async () => {
      const r = await postToHarpoon(s.harpoonUrl, s.token, inflight, batch, s.seconds, s.regionSlugs);
      return { requests_in_flight: inflight, events_per_request: batch, acknowledged: r.events, refused_429: r.refused };
    }, s.harpoonUser, false);
    const m1 = await batchStats(s.harpoonUrl);
    const batches = m1.count - m0.count;
    return { ...row, batches, mean_batch_rows: round((m1.rows - m0.rows) / batches), mean_batch_ms: round(((m1.seconds - m0.seconds) / batches) * 1000, 2) };
  };

  s.progress(`  single-row INSERTs over ${s.connections} connections, ${s.seconds} s…`);
  const single = await measure(async () => {
    await plainInserts(s.plainDb, s.connections, 1, s.seconds, s.regionIds);
    return { connections: s.connections, rows_per_statement: 1 };
  }, s.plainUser, true);
  s.progress(`  multi-row INSERTs of ${s.batch} rows on one connection, ${s.seconds} s…`);
  const multi = await measure(async () => {
    await plainInserts(s.plainDb, 1, s.batch, s.seconds, s.regionIds);
    return { connections: 1, rows_per_statement: s.batch };
  }, s.plainUser, true);
  const harpoonSingle = await harpoon(1);
  const harpoonBatch = await harpoon(s.batch);
  s.progress(`  Harpoon's own statements, batches of ${s.batch} creates, one connection, no service, ${s.seconds} s…`);
  const [top] = await s.admin.query('SELECT COALESCE(MAX(id), 0) AS id FROM event_log');
  const sameRows = await measure(async () => {
    await harpoonStatements(s.harpoonDb, s.batch, s.seconds, s.regionIds, s.regionSlugs);
    return { connections: 1, events_per_transaction: s.batch, rows_per_event: 2 };
  }, s.harpoonUser, false);
  // The replicas never saw these entries: left in the log, the next Harpoon row's first batch would find a gap and
  // read them all back (CPU in the next window). Deleted, they are holes, which a replica steps over in one read.
  await s.admin.query('DELETE FROM event_log WHERE id > ?', [Number((top as Array<{ id: number }>)[0]!.id)]);
  return {
    single_row_inserts: single,
    raw_multi_row_inserts: multi,
    raw_harpoon_statements: sameRows,
    harpoon_one_event_per_request: harpoonSingle,
    harpoon_batch_requests: harpoonBatch,
    ratio_one_event_per_request: round(harpoonSingle.events_per_s / single.events_per_s, 2),
    ratio_batch_requests: round(harpoonBatch.events_per_s / single.events_per_s, 2),
    ratio_batch_vs_raw_multi_row: round(harpoonBatch.events_per_s / multi.events_per_s, 2),
    ratio_batch_vs_raw_harpoon_statements: round(harpoonBatch.events_per_s / sameRows.events_per_s, 2),
    ratio_raw_harpoon_statements_vs_single_row: round(sameRows.events_per_s / single.events_per_s, 2),
  };
}
