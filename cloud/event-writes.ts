import type { Knex } from 'knex';
import { goesNew } from '../lib/cutover/decide.ts';
import { FEATURE_ROW_SQL, parseFeatureRow } from '../lib/cutover/feature-row.ts';
import type { Routing } from '../lib/cutover/types.ts';
import { EVENT_WRITES } from '../domain/features.ts';

/** The cutover feature that moves Cloud's event writes (and, at full, its event reads) to Harpoon. */

/**
 * Reads the `event-writes` row. Every Cloud write transaction reads it first
 * with `lock` (LOCK IN SHARE MODE) and decides from that read: the
 * controller's UPDATE to `full` then waits for every direct write in flight,
 * so once `full` is committed no direct INSERT into events can still commit
 * (the fence, docs/harpoon-era.md). Reads take it without the lock.
 *
 * @example
 *   const routing = await readEventWrites(trx, { lock: true });
 *   if (writesViaHarpoon(routing, customer.id)) … // outbox; else INSERT INTO events
 */
export async function readEventWrites(db: Knex | Knex.Transaction, options: { lock?: boolean } = {}): Promise<Routing> {
  const [rows] = (await db.raw(`${FEATURE_ROW_SQL}${options.lock ? ' LOCK IN SHARE MODE' : ''}`, [EVENT_WRITES])) as [Array<Record<string, unknown>>];
  return parseFeatureRow(rows[0]).routing;
}

/** Whether this customer's events are written through the outbox and Harpoon: a sticky bucket per customer. */
export function writesViaHarpoon(routing: Routing, customerId: number): boolean {
  return goesNew(EVENT_WRITES, routing, { key: String(customerId) });
}

/**
 * Whether Cloud reads events through Harpoon. Only at `full`: below it some
 * customers still write directly, and at full (and after `lockdown`) Cloud
 * may not touch `events` at all.
 */
export function readsViaHarpoon(routing: Routing): boolean {
  return routing.mode === 'full';
}
