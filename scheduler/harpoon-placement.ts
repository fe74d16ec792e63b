import type { Knex } from 'knex';
import { HarpoonClientError, type HarpoonClient, type HarpoonEvent } from '../harpoon/client.ts';
import type { SizeSpec } from './filters.ts';
import { clampDecision, groupByHost, splitByFence, lockHostsWithLedger, setDropletHosts, swapFitting, type CommitFence, type DecisionRow, type PlacementIntent, type RoundResult } from './placement.ts';
import type { HostReserved } from './state.ts';

/**
 * Placement in Harpoon mode (event-writes full): no statement on `events`.
 *
 * The droplet row is the lease. A placement is two steps:
 * 1. **reserve** (MySQL, one transaction): the CAS of placement.ts on the
 *    hosts (generation + ledger under `FOR UPDATE`), and the droplet's
 *    `server_id` set — only if it is still NULL (`FOR UPDATE`): that is
 *    what the ledger counts, so the host's room is taken from this commit
 *    on, and no other V2 replica can reserve the same droplet elsewhere;
 * 2. **place** through Harpoon: `setStatus(id, { server_id })`, idempotent.
 *
 * A crash between the two leaves a droplet with a host and an unplaced
 * event: whichever replica meets that event next *finishes* it (places it
 * on the reserved host; the capacity was checked when it was reserved).
 * A 409 HARPOON_ERR_ALREADY_PLACED means V1 or a V2 replica still on MySQL
 * placed it first: the reservation is given back (the droplet follows the
 * event's real host). Failing an event marks its droplet `error` under the
 * same guard first, then the event through Harpoon.
 */

/** What a queued event's droplet says: free to rank, or decided by a reservation not yet confirmed. */
export interface DropletState {
  id: number;
  server_id: number | null;
  status: string;
  customer_id: number | null;
  size: SizeSpec | null;
}

export async function loadDroplets(db: Knex, ids: readonly number[]): Promise<Map<number, DropletState>> {
  const out = new Map<number, DropletState>();
  if (ids.length === 0) return out;
  const rows = (await db('droplets as d')
    .leftJoin('sizes as z', 'z.id', 'd.size_id')
    .whereIn('d.id', ids)
    .select('d.id', 'd.server_id', 'd.status', 'd.customer_id', 'z.slug', 'z.memory', 'z.vcpus', 'z.disk')) as Array<{
    id: number;
    server_id: number | null;
    status: string;
    customer_id: number | null;
    slug: string | null;
    memory: number | null;
    vcpus: number | null;
    disk: number | null;
  }>;
  for (const r of rows) {
    out.set(r.id, {
      id: r.id,
      server_id: r.server_id,
      status: r.status,
      customer_id: r.customer_id,
      size: r.slug === null ? null : { slug: r.slug, memory: Number(r.memory), vcpus: Number(r.vcpus), disk: Number(r.disk) },
    });
  }
  return out;
}

/**
 * Step 1 for a round: one READ COMMITTED transaction, a fixed number of
 * statements. `lost` are intents whose droplet another replica reserved
 * (or failed) since the batch looked.
 */
export async function reserveRound(db: Knex, all: PlacementIntent[], reserved: HostReserved, fence?: CommitFence): Promise<RoundResult> {
  if (all.length === 0) return { committed: [], conflictedHosts: [], conflicted: [], lost: [], fenced: [] };
  return db.transaction(
    async (trx) => {
      const { intents, fenced } = await splitByFence(trx, all, fence);
      if (intents.length === 0) return { committed: [], conflictedHosts: [], conflicted: [], lost: [], fenced };
      // Hosts first, then droplets: the lock order of the agents' completions and of commitRound.
      const hostIds = [...new Set(intents.map((i) => i.server_id))].sort((a, b) => a - b);
      const rows = await lockHostsWithLedger(trx, hostIds);
      const free = new Set(
        (
          (await trx('droplets')
            .whereIn(
              'id',
              intents.map((i) => i.droplet_id),
            )
            .whereNull('server_id')
            .whereNot('status', 'error')
            .orderBy('id')
            .select('id')
            .forUpdate()) as Array<{ id: number }>
        ).map((r) => Number(r.id)),
      );
      const lost = intents.filter((i) => !free.has(i.droplet_id));
      const { committed, conflicted, conflictedHosts } = await swapFitting(trx, groupByHost(intents.filter((i) => free.has(i.droplet_id))), rows, reserved);
      if (committed.length > 0) {
        await setDropletHosts(trx, committed);
      }
      return { committed, conflicted, conflictedHosts, lost, fenced };
    },
    { isolationLevel: 'read committed' },
  );
}

export type PlaceOutcome =
  /** The event is on the reserved host; `changed` false when someone (a finisher) had already put it there. */
  | { kind: 'placed'; changed: boolean; event: HarpoonEvent }
  /** Someone placed (or ended) it elsewhere first: the reservation was given back. */
  | { kind: 'released'; event: HarpoonEvent | undefined }
  /** Harpoon did not answer for it: the reservation stays, the next batch finishes it. */
  | { kind: 'unconfirmed'; error: string };

const MAX_CHANGES = 500;

/**
 * Step 2: `POST /v1/events/status` with every placement of the round (up
 * to 500 a request). 409 HARPOON_ERR_ALREADY_PLACED gives the reservation
 * back: the droplet takes the event's real host (or none), only if it still
 * points where this replica put it.
 */
export async function placeReserved(db: Knex, client: HarpoonClient, placements: Array<{ event_id: number; droplet_id: number; server_id: number }>): Promise<Map<number, PlaceOutcome>> {
  const out = new Map<number, PlaceOutcome>();
  for (let i = 0; i < placements.length; i += MAX_CHANGES) {
    const chunk = placements.slice(i, i + MAX_CHANGES);
    let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
    try {
      results = await client.setStatuses(chunk.map((p) => ({ id: p.event_id, server_id: p.server_id })));
    } catch (err) {
      for (const p of chunk) out.set(p.event_id, { kind: 'unconfirmed', error: codeOf(err) });
      continue;
    }
    const byId = new Map(results.map((r) => [r.id, r]));
    for (const p of chunk) {
      const r = byId.get(p.event_id);
      if (r && 'event' in r) {
        out.set(p.event_id, r.event.server_id === p.server_id ? { kind: 'placed', changed: r.changed, event: r.event } : { kind: 'unconfirmed', error: 'placed elsewhere' });
      } else if (r && r.error.code === 'HARPOON_ERR_ALREADY_PLACED') {
        out.set(p.event_id, { kind: 'released', event: await releaseReservation(db, client, p) });
      } else {
        out.set(p.event_id, { kind: 'unconfirmed', error: r ? r.error.code : 'no result' });
      }
    }
  }
  return out;
}

/** Gives a reservation back after a 409: the droplet follows the event's real placement. */
async function releaseReservation(db: Knex, client: HarpoonClient, p: { event_id: number; droplet_id: number; server_id: number }): Promise<HarpoonEvent | undefined> {
  const event = await client.getEvent(p.event_id).catch(() => undefined);
  // Unknown: keep the reservation (the ledger over-counts this host, which is safe) rather than guess.
  if (!event) return undefined;
  await db('droplets').where({ id: p.droplet_id, server_id: p.server_id }).update({ server_id: event.server_id, updated_at: db.raw('CURRENT_TIMESTAMP(3)') });
  return event;
}

/**
 * Fails events no host can take: their droplets go to `error` first (only
 * if no replica reserved them: the same guard as a reservation; the
 * decision row in the same transaction), then the events through Harpoon.
 * Returns the events Harpoon confirmed in `error`.
 */
export async function failThroughHarpoon(
  db: Knex,
  client: HarpoonClient,
  failures: Array<{ event_id: number; droplet_id: number | null; decision: DecisionRow | undefined }>,
): Promise<number[]> {
  const marked: Array<{ event_id: number; message: string }> = [];
  for (const f of failures) {
    const ok =
      f.droplet_id === null
        ? true
        : await db.transaction(async (trx) => {
            const n = await trx('droplets').where({ id: f.droplet_id }).whereNull('server_id').update({ status: 'error', updated_at: trx.raw('CURRENT_TIMESTAMP(3)') });
            if (n === 0) {
              // Already error (an earlier attempt that Harpoon did not confirm): finish it; reserved: not ours to fail.
              const row = (await trx('droplets').where({ id: f.droplet_id }).first('server_id', 'status')) as { server_id: number | null; status: string } | undefined;
              if (!row || row.server_id !== null || row.status !== 'error') return false;
              return true;
            }
            if (f.decision) await trx('placement_decisions').insert(clampDecision(f.decision));
            return true;
          });
    if (ok) marked.push({ event_id: f.event_id, message: (f.decision?.summary ?? 'cannot place').slice(0, 255) });
  }
  if (marked.length === 0) return [];
  const failed: number[] = [];
  for (let i = 0; i < marked.length; i += MAX_CHANGES) {
    const chunk = marked.slice(i, i + MAX_CHANGES);
    const results = await client.setStatuses(chunk.map((m) => ({ id: m.event_id, status: 'error' as const, message: m.message }))).catch(() => []);
    for (const r of results) if ('event' in r && r.event.status === 'error') failed.push(r.id);
  }
  return failed;
}

function codeOf(err: unknown): string {
  return err instanceof HarpoonClientError ? err.code : (err as Error).message;
}
