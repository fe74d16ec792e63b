import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Knex } from 'knex';
import { HarpoonClientError, type HarpoonClient, type HarpoonEvent } from '../harpoon/client.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { CloudMetrics } from './metrics.ts';
import {
  deleteOutbox,
  outboxKey,
  parkOutbox,
  readLeased,
  recordAttempt,
  releaseLeases,
  renewLeases,
  takeExpiredLeases,
  type OutboxLease,
  type OutboxRow,
} from './outbox.ts';

export interface OutboxRelayOptions {
  db: Knex;
  harpoon: HarpoonClient;
  logger: Logger;
  metrics: CloudMetrics;
  /** Rows per Harpoon request (one Harpoon transaction). */
  batch?: number;
  /** First pause after a failed relay; doubled per failure up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long a row stays this Cloud's without a renewal (default 10000 ms): a dead Cloud's rows are taken after it. */
  leaseMs?: number;
  /** How often the relay renews its leases and takes expired ones (default 2000 ms). */
  scanMs?: number;
  /** Failed relays of one row before it is parked for an operator (default 100: minutes of retries at the backoff cap). */
  maxAttempts?: number;
  /** This Cloud's name in `lease_owner` (default host:pid:random). */
  owner?: string;
}

export interface OutboxRelay {
  /** The first scan: rows whose lease expired (a crash, a stop during a Harpoon outage) are taken and queued; then one scan per scanMs. */
  start(): Promise<void>;
  /** Queues a row just committed; settles with its event once Harpoon holds it (undefined if the row is parked or this relay closes first). */
  submit(row: OutboxRow): Promise<HarpoonEvent | undefined>;
  /** Rows this relay holds that Harpoon has not confirmed yet. */
  pending(): number;
  /** The lease a write puts on its outbox row (insertOutbox), so no other Cloud takes it while this one relays it. */
  lease(): OutboxLease;
  /** One scan now (renew, take expired, queue them); the timer runs the same. */
  scan(): Promise<void>;
  /** Lets the request in flight to Harpoon finish, gives the leases up, then stops; rows left are taken by another Cloud at once. Idempotent. */
  close(): Promise<void>;
}

/** Rows taken per scan: a live Cloud takes a dead one's backlog a page per scan, never all at once. */
const TAKE_PAGE = 500;

function checkMs(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw invalidOption(name, value, `an integer number of ms from ${min} to ${max}`);
  return v;
}

/**
 * Relays outbox rows to Harpoon: `createEvents` with the key `outbox-<id>`
 * (so a retry after a timeout, a second Cloud's take-over or a restart after
 * kill -9 returns the first event, never a second one), then deletes the
 * rows. A row is held in memory from the moment it is committed, under a
 * lease in its row (`lease_owner`, `lease_until`) that this relay renews
 * while it retries. Every `scanMs` the relay also takes, with one atomic
 * UPDATE, rows whose lease expired: a dead Cloud's rows are relayed by a
 * live one within leaseMs + scanMs, not at the next restart. An idle
 * relay costs one UPDATE per scan.
 *
 * Every transient failure (network, 5xx, 429, and 401/403: a token rotation
 * under way) is retried with capped exponential backoff and counted on the
 * row (`attempts`). A row Harpoon refuses outright (another 4xx, or an
 * error for that item), or one that failed `maxAttempts` times, is parked
 * (`parked_at`): logged with CLOUD_ERR_OUTBOX_PARKED, counted in
 * cloud_outbox_parked_total, kept for an operator, and shown by
 * cloud_outbox_parked_rows and `strangler cutover status`.
 *
 * @example
 *   const relay = createOutboxRelay({ db, harpoon, logger, metrics });
 *   await relay.start();
 *   const row = await insertOutbox(trx, event, relay.lease()); // then, after COMMIT:
 *   const created = await relay.submit(row);
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, harpoon, metrics } = options;
  const log = options.logger.child({ component: 'cloud-outbox' });
  const batch = options.batch ?? 100;
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const leaseMs = checkMs('leaseMs', options.leaseMs, 10_000, 200, 3_600_000);
  const scanMs = checkMs('scanMs', options.scanMs, 2000, 50, leaseMs);
  const maxAttempts = options.maxAttempts ?? 100;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw invalidOption('maxAttempts', options.maxAttempts, 'an integer >= 1');
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const lease: OutboxLease = { owner, ms: leaseMs };
  const rows = new Map<number, OutboxRow>();
  const waiters = new Map<number, Array<(e: HarpoonEvent | undefined) => void>>();
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let scanTimer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> | undefined;
  /** Rows relayed or parked while a scan reads: the read may still show them, and they must not come back. */
  let finished: Set<number> | undefined;
  let backoff = 0;
  let closed = false;
  let closing: Promise<void> | undefined;

  function settle(id: number, event: HarpoonEvent | undefined): void {
    for (const w of waiters.get(id) ?? []) w(event);
    waiters.delete(id);
  }

  function kick(): void {
    if (closed || running || timer || rows.size === 0) return;
    running = drain().finally(() => {
      running = undefined;
      // Rows submitted while the last request was out; after a failure the timer is set and this waits for it.
      kick();
    });
  }

  async function retryLater(err: unknown, chunk: OutboxRow[]): Promise<void> {
    metrics.outboxRelayFailures.inc();
    backoff = Math.min(maxBackoff, backoff === 0 ? minBackoff : backoff * 2);
    const why = (err as Error).message;
    log.warn({ err: why, rows: chunk.length, retryInMs: backoff }, 'could not relay outbox rows to Harpoon; they stay in the outbox and are retried');
    try {
      await recordAttempt(db, chunk.map((r) => r.id), why);
      for (const row of chunk) {
        row.attempts = (row.attempts ?? 0) + 1;
        if (row.attempts >= maxAttempts) await park(row, 'attempts', `${row.attempts} failed relays, the last: ${why}`);
      }
    } catch (dbErr) {
      log.warn({ err: (dbErr as Error).message }, 'could not count the failed relay on the outbox rows');
    }
    if (closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      kick();
    }, backoff * (0.5 + Math.random() / 2));
    timer.unref();
  }

  /** Sends rows; a refusal of the whole request is retried row by row so one bad row cannot hold up the rest. */
  async function relay(chunk: OutboxRow[]): Promise<Array<{ row: OutboxRow; event: HarpoonEvent }>> {
    try {
      const results = await harpoon.createEvents(chunk.map((r) => ({ ...r.event, key: outboxKey(r.id) })));
      const done: Array<{ row: OutboxRow; event: HarpoonEvent }> = [];
      for (const [i, res] of results.entries()) {
        if ('event' in res) done.push({ row: chunk[i]!, event: res.event });
        else await park(chunk[i]!, 'refused', `${res.error.code}: ${res.error.message}`);
      }
      return done;
    } catch (err) {
      // 401/403 are transient too: during a token rotation Harpoon may not know the new token yet. 408/429: come back later.
      const refused = err instanceof HarpoonClientError && err.status >= 400 && err.status < 500 && ![401, 403, 408, 429].includes(err.status);
      if (!refused) throw err;
      if (chunk.length === 1) {
        await park(chunk[0]!, 'refused', `${err.code}: ${err.message}`);
        return [];
      }
      const done: Array<{ row: OutboxRow; event: HarpoonEvent }> = [];
      for (const row of chunk) done.push(...(await relay([row])));
      return done;
    }
  }

  async function park(row: OutboxRow, reason: 'refused' | 'attempts', why: string): Promise<void> {
    if (reason === 'refused') metrics.outboxRejected.inc();
    metrics.outboxParked.inc({ reason });
    log.error(
      { code: 'CLOUD_ERR_OUTBOX_PARKED', outbox_id: row.id, droplet_id: row.event.droplet_id, type: row.event.type, reason, why },
      'an outbox row cannot be relayed to Harpoon; it is parked in event_outbox for an operator (runbooks/errors.md)',
    );
    rows.delete(row.id);
    finished?.add(row.id);
    settle(row.id, undefined);
    await parkOutbox(db, row.id, why);
  }

  async function drain(): Promise<void> {
    while (!closed && rows.size > 0) {
      const chunk = [...rows.values()].slice(0, batch);
      let done: Array<{ row: OutboxRow; event: HarpoonEvent }>;
      try {
        done = await relay(chunk);
        // Harpoon holds the events: the writes waiting for them may answer before the rows are deleted.
        for (const { row, event } of done) settle(row.id, event);
        // A failed delete only means the next relay gets `duplicate: true` and deletes again.
        await deleteOutbox(db, done.map((d) => d.row.id));
      } catch (err) {
        await retryLater(err, chunk.filter((r) => rows.has(r.id)));
        return;
      }
      backoff = 0;
      metrics.outboxRelayed.inc(done.length);
      for (const { row } of done) {
        rows.delete(row.id);
        finished?.add(row.id);
      }
    }
  }

  /** Renews what this relay holds, takes what nobody holds any more, and queues it. */
  async function scanOnce(): Promise<void> {
    if (closed) return;
    if (rows.size > 0) await renewLeases(db, lease);
    const taken = await takeExpiredLeases(db, lease, TAKE_PAGE);
    if (taken === 0) return;
    let added = 0;
    const done = new Set<number>();
    finished = done;
    let leased: OutboxRow[];
    try {
      leased = await readLeased(db, owner, TAKE_PAGE + rows.size);
    } finally {
      // Nothing yields from here to the loop's end, so no row finishes unseen in between.
      finished = undefined;
    }
    for (const row of leased) {
      if (closed || rows.has(row.id) || done.has(row.id)) continue;
      rows.set(row.id, row);
      added++;
    }
    if (added > 0) {
      metrics.outboxTaken.inc(added);
      log.info({ rows: added }, 'took over outbox rows whose lease expired (a Cloud died or stopped before relaying them)');
    }
    kick();
  }

  function scan(): Promise<void> {
    scanning ??= scanOnce().finally(() => {
      scanning = undefined;
    });
    return scanning;
  }

  return {
    async start() {
      await scan();
      scanTimer = setInterval(() => void scan().catch((err: Error) => log.warn({ err: err.message }, 'outbox scan failed; the next one retries')), scanMs);
      scanTimer.unref();
    },
    submit(row) {
      if (closed) return Promise.resolve(undefined);
      rows.set(row.id, row);
      const done = new Promise<HarpoonEvent | undefined>((resolve) => {
        const list = waiters.get(row.id) ?? [];
        list.push(resolve);
        waiters.set(row.id, list);
      });
      kick();
      return done;
    },
    pending: () => rows.size,
    lease: () => lease,
    scan,
    close() {
      closing ??= (async () => {
        closed = true;
        if (timer) clearTimeout(timer);
        timer = undefined;
        if (scanTimer) clearInterval(scanTimer);
        await Promise.allSettled([running, scanning]);
        for (const id of [...waiters.keys()]) settle(id, undefined);
        await releaseLeases(db, owner).catch((err: Error) => log.warn({ err: err.message }, 'could not give the outbox leases up; another Cloud takes the rows once they expire'));
      })();
      return closing;
    },
  };
}

/**
 * Submits a committed row and waits for Harpoon's event at most `ms`: the
 * answer a write gives when the event is still in the outbox (Harpoon down
 * or slow) is decided by the caller from `undefined`.
 */
export async function waitRelayed(relay: OutboxRelay, row: OutboxRow, ms: number): Promise<HarpoonEvent | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([relay.submit(row), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
