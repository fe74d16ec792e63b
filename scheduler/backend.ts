import type { Knex } from 'knex';
import type { HarpoonClient } from '../harpoon/client.ts';
import { claimAndLoad, releaseEvents, type ClaimedEvent } from './claims.ts';
import { failThroughHarpoon, loadDroplets, placeReserved, reserveRound } from './harpoon-placement.ts';
import type { HarpoonFeed } from './harpoon-feed.ts';
import { commitRound, failEvents, recordDecisions, type CommitFence, type DecisionRow, type PlacementIntent, type RoundResult } from './placement.ts';
import type { HostReserved, HostStore } from './state.ts';

/**
 * Where a replica's batch gets its events and how it commits them: over
 * MySQL (leases on `events`, the direct placement transaction) while
 * `event-writes` is below full, through Harpoon at full (the queue from the
 * stream, reservations on the droplet rows, placements by setStatus).
 * scheduler/create-scheduler-v2.ts ranks the same way for both.
 */
export interface PlacementBackend {
  readonly kind: 'mysql' | 'harpoon';
  /** Up to `limit` events of `scope` (undefined: every region): `preferred` first, others only once `helpAfterMs` old. */
  take(options: { limit: number; scope?: readonly number[]; preferred?: readonly number[]; helpAfterMs: number }): Promise<{ events: ClaimedEvent[]; decided: Decided[] }>;
  /** The busy lists of these regions, fresh (Harpoon mode: the stream keeps them, nothing to read). */
  refreshBusy(regions: readonly number[]): Promise<void>;
  commit(intents: PlacementIntent[]): Promise<BackendRound>;
  /** The events may be taken again after `afterMs`. */
  release(ids: readonly number[], afterMs: number): Promise<void>;
  /** Fails the events no host can take; returns the ones that were failed. */
  fail(failures: Failure[]): Promise<number[]>;
  recordWaits(rows: DecisionRow[]): Promise<void>;
}

export interface Failure {
  event_id: number;
  region_id: number;
  droplet_id: number | null;
  decision: DecisionRow;
}

/** Events decided without ranking: Harpoon mode finishing a reservation (or a failure) left unconfirmed. */
export interface Decided {
  event_id: number;
  outcome: 'placed' | 'claim-lost' | 'wait' | 'fail';
  server_id?: number;
  summary: string;
}

export interface BackendRound extends RoundResult {
  /** Hosts whose generation this round moved (default: the hosts of `committed`). */
  swappedHosts?: number[];
  /** Reserved, but Harpoon did not confirm the placement: the reservation stays booked and is finished later. */
  unconfirmed?: PlacementIntent[];
}

export function mysqlBackend(deps: { db: Knex; replicaId: string; leaseMs: number; reserved: HostReserved; store: () => HostStore; fence?: CommitFence }): PlacementBackend {
  const { db, replicaId, leaseMs } = deps;
  return {
    kind: 'mysql',
    async take({ limit, scope, preferred, helpAfterMs }) {
      let events = await claimAndLoad(db, replicaId, { limit, leaseMs, regionIds: preferred ?? scope });
      if (events.length === 0 && preferred) events = await claimAndLoad(db, replicaId, { limit, leaseMs, regionIds: scope, olderThanMs: helpAfterMs });
      return { events, decided: [] };
    },
    refreshBusy: (regions) => deps.store().refreshInflight(regions),
    commit: (intents) => commitRound(db, replicaId, intents, deps.reserved, deps.fence),
    release: (ids, afterMs) => releaseEvents(db, replicaId, ids, afterMs),
    fail: (failures) => failEvents(db, replicaId, failures, deps.fence),
    recordWaits: (rows) => recordDecisions(db, rows),
  };
}

export function harpoonBackend(deps: {
  db: Knex;
  client: HarpoonClient;
  feed: HarpoonFeed;
  replicaId: string;
  leaseMs: number;
  waitRetryMs: number;
  reserved: HostReserved;
  policy: string;
  fence?: CommitFence;
  store: () => HostStore;
  /** Busy entries older than this are re-read through Harpoon before a batch ranks. */
  busyRecheckMs: number;
  /** Fault injection: sleep between a reservation's commit and its placement (the crash window). */
  pauseBeforePlaceMs?: number;
}): PlacementBackend {
  const { db, client, feed } = deps;
  const finishedRow = (event_id: number, server_id: number): DecisionRow => ({
    event_id,
    replica: deps.replicaId,
    outcome: 'placed',
    server_id,
    policy: deps.policy,
    score: null,
    hosts_total: 0,
    hosts_available: 0,
    attempts: 1,
    conflicts: 0,
    summary: `placed on host ${server_id}: finished a reservation whose placement had not been confirmed (an earlier batch, or a replica that stopped).`,
  });
  return {
    kind: 'harpoon',
    async take({ limit, scope, preferred, helpAfterMs }) {
      const inScope = (regionId: number) => !scope || scope.includes(regionId);
      let taken = feed.take((q) => inScope(q.event.region_id) && (!preferred || preferred.includes(q.event.region_id)), limit);
      if (taken.length === 0 && preferred) {
        const now = Date.now();
        taken = feed.take((q) => inScope(q.event.region_id) && now - q.created_ms >= helpAfterMs, limit);
      }
      // Held back until this batch decides (a batch that throws leaves them for a lease's time, as in MySQL mode).
      for (const q of taken) feed.defer(q.event.id, deps.leaseMs);
      const droplets = await loadDroplets(
        db,
        taken.map((q) => q.event.droplet_id).filter((d): d is number => d !== null),
      );
      const claimedAt = performance.now();
      const events: ClaimedEvent[] = [];
      const finishPlace: Array<{ event_id: number; droplet_id: number; server_id: number }> = [];
      const finishFail: Array<{ event_id: number; droplet_id: number | null; decision: undefined }> = [];
      for (const { event, created_ms } of taken) {
        const d = event.droplet_id === null ? undefined : droplets.get(event.droplet_id);
        if (d && d.server_id !== null) finishPlace.push({ event_id: event.id, droplet_id: d.id, server_id: d.server_id });
        else if (d && d.status === 'error') finishFail.push({ event_id: event.id, droplet_id: d.id, decision: undefined });
        else {
          events.push({
            id: event.id,
            droplet_id: d ? d.id : null,
            customer_id: d?.customer_id ?? event.customer_id,
            region_id: event.region_id,
            size: d?.size ?? null,
            claimed_at: claimedAt,
            created_ms,
          });
        }
      }
      const decided: Decided[] = [];
      if (finishPlace.length > 0) {
        const outcomes = await placeReserved(db, client, finishPlace);
        const rows: DecisionRow[] = [];
        for (const p of finishPlace) {
          const o = outcomes.get(p.event_id)!;
          if (o.kind === 'placed') {
            feed.apply(o.event);
            if (o.changed) rows.push(finishedRow(p.event_id, p.server_id));
            decided.push({ event_id: p.event_id, outcome: 'placed', server_id: p.server_id, summary: finishedRow(p.event_id, p.server_id).summary });
          } else if (o.kind === 'released') {
            if (o.event) feed.apply(o.event);
            decided.push({ event_id: p.event_id, outcome: 'claim-lost', summary: 'another scheduler placed the event first; the reservation was given back.' });
          } else {
            feed.defer(p.event_id, deps.waitRetryMs);
            decided.push({ event_id: p.event_id, outcome: 'wait', server_id: p.server_id, summary: `reserved on host ${p.server_id}; Harpoon did not confirm the placement (${o.error}): retried.` });
          }
        }
        await recordDecisions(db, rows);
      }
      if (finishFail.length > 0) {
        const failed = new Set(await failThroughHarpoon(db, client, finishFail));
        for (const f of finishFail) {
          if (failed.has(f.event_id)) decided.push({ event_id: f.event_id, outcome: 'fail', summary: 'failed: finished a failure whose event had not been confirmed in error.' });
          else feed.defer(f.event_id, deps.waitRetryMs);
        }
      }
      return { events, decided };
    },
    // The stream keeps the busy lists; entries busy for long are re-read through Harpoon (a completion
    // written straight to MySQL during a router's switch never reaches the stream).
    async refreshBusy() {
      const store = deps.store();
      const stale = store.staleBusy(deps.busyRecheckMs, 100);
      if (stale.length === 0) return;
      const events = await Promise.all(stale.map((id) => client.getEvent(id).catch(() => undefined)));
      for (const e of events) if (e) store.applyBusy(e);
    },
    async commit(intents) {
      const round = await reserveRound(db, intents, deps.reserved, deps.fence);
      if (deps.pauseBeforePlaceMs && round.committed.length > 0) await new Promise((r) => setTimeout(r, deps.pauseBeforePlaceMs));
      const outcomes = await placeReserved(db, client, round.committed);
      const placed: PlacementIntent[] = [];
      const released: PlacementIntent[] = [];
      const unconfirmed: PlacementIntent[] = [];
      const rows: DecisionRow[] = [];
      for (const i of round.committed) {
        const o = outcomes.get(i.event_id)!;
        if (o.kind === 'placed') {
          feed.apply(o.event);
          // A repeat (changed: false) means a finisher placed it already, and recorded it.
          if (o.changed) rows.push(i.decision);
          placed.push(i);
        } else if (o.kind === 'released') {
          if (o.event) feed.apply(o.event);
          released.push(i);
        } else {
          feed.defer(i.event_id, deps.waitRetryMs);
          unconfirmed.push(i);
        }
      }
      await recordDecisions(db, rows);
      // Events whose droplet another replica reserved since the batch looked: that one places them (or,
      // if it stopped, whoever meets them after helping time finishes its reservation).
      return {
        ...round,
        committed: placed,
        lost: [...round.lost, ...released],
        swappedHosts: [...new Set(round.committed.map((i) => i.server_id))],
        unconfirmed,
      };
    },
    async release(ids, afterMs) {
      for (const id of ids) feed.defer(id, afterMs);
    },
    fail: (failures) => failThroughHarpoon(db, client, failures),
    recordWaits: (rows) => recordDecisions(db, rows),
  };
}
