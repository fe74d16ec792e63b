import type { Knex } from 'knex';
import { HarpoonClientError, type HarpoonClient, type HarpoonEvent } from '../harpoon/client.ts';
import type { Logger } from '../lib/logger.ts';
import type { CloudMetrics } from './metrics.ts';
import { deleteOutbox, outboxKey, readOutboxPage, type OutboxRow } from './outbox.ts';

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
}

export interface OutboxRelay {
  /** The recovery read: every row already in the outbox (a crash, a Harpoon outage before a restart) is queued. */
  start(): Promise<void>;
  /** Queues a row just committed; settles with its event once Harpoon holds it (undefined if this relay closes first). */
  submit(row: OutboxRow): Promise<HarpoonEvent | undefined>;
  /** Rows this relay holds that Harpoon has not confirmed yet. */
  pending(): number;
  /** Lets the request in flight to Harpoon finish, then stops; rows left stay in MySQL for the next start. Idempotent. */
  close(): Promise<void>;
}

const RECOVERY_PAGE = 1000;

/**
 * Relays outbox rows to Harpoon: `createEvents` with the key `outbox-<id>`
 * (so a retry after a timeout, a second Cloud's recovery or a restart after
 * kill -9 returns the first event, never a second one), then deletes the
 * rows. Rows are held in memory from the moment they are committed (or read
 * once at start-up), so the relay reads MySQL only at start and deletes
 * after success: an empty outbox costs no query at all, and a Harpoon outage
 * costs only retries to Harpoon, with exponential backoff.
 *
 * A row Harpoon refuses outright (4xx other than 401/403/429, e.g. its region was
 * removed) is left in the table, logged with CLOUD_ERR_OUTBOX_REJECTED and
 * counted in cloud_outbox_rejected_total; retrying it would fail the same way.
 *
 * @example
 *   const relay = createOutboxRelay({ db, harpoon, logger, metrics });
 *   await relay.start();
 *   const event = await relay.submit(row); // after the row's transaction committed
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, harpoon, metrics } = options;
  const log = options.logger.child({ component: 'cloud-outbox' });
  const batch = options.batch ?? 100;
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const rows = new Map<number, OutboxRow>();
  const waiters = new Map<number, Array<(e: HarpoonEvent | undefined) => void>>();
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
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

  function retryLater(err: unknown, ids: number[]): void {
    metrics.outboxRelayFailures.inc();
    backoff = Math.min(maxBackoff, backoff === 0 ? minBackoff : backoff * 2);
    log.warn({ err: (err as Error).message, rows: ids.length, retryInMs: backoff }, 'could not relay outbox rows to Harpoon; they stay in the outbox');
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
      results.forEach((res, i) => {
        if ('event' in res) done.push({ row: chunk[i]!, event: res.event });
        else reject(chunk[i]!, `${res.error.code}: ${res.error.message}`);
      });
      return done;
    } catch (err) {
      // 401/403 are transient too: during a token rotation Harpoon may not know the new token yet.
      const refused = err instanceof HarpoonClientError && err.status >= 400 && err.status < 500 && ![401, 403, 429].includes(err.status);
      if (!refused) throw err;
      if (chunk.length === 1) {
        reject(chunk[0]!, `${err.code}: ${err.message}`);
        return [];
      }
      const done: Array<{ row: OutboxRow; event: HarpoonEvent }> = [];
      for (const row of chunk) done.push(...(await relay([row])));
      return done;
    }
  }

  function reject(row: OutboxRow, why: string): void {
    metrics.outboxRejected.inc();
    log.error({ code: 'CLOUD_ERR_OUTBOX_REJECTED', outbox_id: row.id, droplet_id: row.event.droplet_id, type: row.event.type, why }, 'Harpoon refused an outbox row; it stays in event_outbox');
    rows.delete(row.id);
    settle(row.id, undefined);
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
        retryLater(err, chunk.map((r) => r.id));
        return;
      }
      backoff = 0;
      metrics.outboxRelayed.inc(done.length);
      for (const { row } of done) rows.delete(row.id);
    }
  }

  return {
    async start() {
      let after = 0;
      for (;;) {
        const page = await readOutboxPage(db, after, RECOVERY_PAGE);
        for (const row of page) rows.set(row.id, row);
        if (page.length < RECOVERY_PAGE) break;
        after = page.at(-1)!.id;
      }
      if (rows.size > 0) log.info({ rows: rows.size }, 'relaying the rows left in the outbox');
      kick();
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
    close() {
      closing ??= (async () => {
        closed = true;
        if (timer) clearTimeout(timer);
        timer = undefined;
        await running;
        for (const id of [...waiters.keys()]) settle(id, undefined);
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
