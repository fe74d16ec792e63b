import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { isLockFailure } from '../lib/db/deadlock.ts';
import type { Logger } from '../lib/logger.ts';
import type { BackendRound, Failure, PlacementBackend } from './backend.ts';
import { loadUserDroplets, type ClaimedEvent } from './claims.ts';
import { summarize, type ConflictNote } from './explain.ts';
import type { SizeSpec } from './filters.ts';
import type { Inventory } from './inventory.ts';
import { JudgedHosts } from './judged-hosts.ts';
import type { Membership } from './membership.ts';
import type { DecisionOutcome, SchedulerMetrics } from './metrics.ts';
import type { ModeControl } from './mode.ts';
import type { ResolvedOptions, SchedulerV2Options } from './options.ts';
import type { DecisionRow, PlacementIntent } from './placement.ts';
import { rankHosts, type RankOptions, type RankResult } from './rank.ts';
import type { HostScraper } from './scraper.ts';
import type { HostRecord, HostStore } from './state.ts';

export interface EventDecision {
  event_id: number;
  outcome: DecisionOutcome;
  server_id?: number;
  server_name?: string;
  score?: number;
  attempts: number;
  conflicts: ConflictNote[];
  summary: string;
}

interface Work {
  event: ClaimedEvent;
  size: SizeSpec;
  droplet_id: number;
  attempts: number;
  conflicts: ConflictNote[];
  /** Hosts the last ranking put first, in order (for re-reading the fallback on conflict). */
  lastRanked: number[];
}

type Intent = PlacementIntent & { work: Work; host: HostRecord };

/** One batch's state while it is placed. */
interface Batch {
  s: HostStore;
  backend: PlacementBackend;
  /** Regions of the batch's events (their busy lists are refreshed). */
  regions: number[];
  /** The customers' droplet counts by host, kept in step with the placements booked in this batch. */
  userDroplets: Map<number, Map<number, number>>;
  out: EventDecision[];
  failures: Failure[];
  waits: number[];
  waitRows: DecisionRow[];
}

const WAIT_MEMORY = 100_000;
/** Hosts ranked per event during placement: the choice and the fallbacks re-read on a conflict. */
const FALLBACKS = 4;

/**
 * A replica's placement batch: claim (own share of the regions first), rank
 * every event against the hosts as scraped metrics and the ledger show them,
 * commit the round through the backend's compare-and-swap, re-rank what
 * conflicted against re-read hosts, and record waits and failures. See
 * scheduler/README.md for the protocol and scheduler/placement.ts for the
 * commit.
 *
 * @example
 *   const placeBatch = createBatchPlacer({ db, resolved, options, inventory, scraper, membership, metrics, mode, log, rankOptions });
 *   const decisions = await placeBatch();
 */
export function createBatchPlacer(deps: {
  db: Knex;
  resolved: ResolvedOptions;
  options: Pick<SchedulerV2Options, 'faults'>;
  inventory: Inventory;
  scraper: HostScraper;
  membership: Membership;
  metrics: SchedulerMetrics;
  mode: ModeControl;
  log: Logger;
  rankOptions(overrides?: Partial<RankOptions>): RankOptions;
  /** Told each batch which regions the replica claims first (its share): the scraper keeps those freshest. */
  onPreferred?(regionIds: readonly number[]): void;
}): () => Promise<EventDecision[]> {
  const { db, resolved, inventory, scraper, membership, metrics, mode, log } = deps;
  const { replicaId, policy, reserved } = resolved;
  const faults = deps.options.faults;
  const waitedOnce = new Set<number>();

  function decisionRow(event_id: number, outcome: DecisionRow['outcome'], rank: RankResult, summary: string, extra: Partial<DecisionRow> = {}): DecisionRow {
    return {
      event_id,
      replica: replicaId,
      outcome,
      server_id: null,
      policy: rank.policy,
      score: null,
      hosts_total: rank.hosts_total,
      hosts_available: rank.hosts_available,
      attempts: 1,
      conflicts: 0,
      summary,
      ...extra,
    };
  }

  /** Takes back a placement booked in the local view that did not commit. */
  function unbook(b: Batch, i: Intent): void {
    b.s.unreserve(i.host, i.event_id, i);
    const m = i.work.event.customer_id === null ? undefined : b.userDroplets.get(i.work.event.customer_id);
    const n = m?.get(i.host.id);
    if (m && n !== undefined) {
      if (n > 1) m.set(i.host.id, n - 1);
      else m.delete(i.host.id);
    }
  }

  /**
   * Own share of the regions first (only replicas running their loop, started with start(), take part
   * in the split; one driven by hand with placeOnce() claims from every region). When the share has
   * nothing to claim, help with any region in scope, but only with events that have waited helpAfterMs:
   * their owner is busy or gone (membership drops a dead replica within three heartbeats), and younger
   * ones would only make two replicas race for the same hosts.
   */
  async function claim(phase: (name: string, since: number) => void) {
    const mark = performance.now();
    const s = await inventory.ensureLoaded();
    let scope = inventory.scope();
    let claimScope = inventory.regionIds();
    if (resolved.follow) {
      claimScope = scope = await mode.movedNow(scope);
      if (scope.length === 0) return undefined;
    }
    const backend = mode.backend();
    // Harpoon mode reads the live replicas only when there is work (the heartbeat timer only writes).
    if (mode.feed()) await membership.refresh();
    const preferred = membership.preferred(scope);
    deps.onPreferred?.(preferred);
    const shared = preferred.length > 0 && preferred.length < scope.length;
    const taken = await backend.take({ limit: resolved.batchSize, scope: claimScope, ...(shared ? { preferred } : {}), helpAfterMs: resolved.helpAfterMs });
    phase('claim', mark);
    return { s, backend, taken, preferred };
  }

  /**
   * After the claim: metrics fresh enough, the batch regions' busy lists, the customers' droplets. Independent
   * reads, so they run at once (each on its own connection): the batch waits for the slowest, not the sum.
   */
  async function prepare(b: Batch, events: ClaimedEvent[], phase: (name: string, since: number) => void): Promise<void> {
    const timed = async (name: string, work: Promise<unknown>) => {
      const mark = performance.now();
      await work;
      phase(name, mark);
    };
    const customers = [...new Set(events.map((e) => e.customer_id).filter((c): c is number => c !== null))];
    const pairs = [...new Map(events.filter((e) => e.customer_id !== null).map((e) => [`${e.customer_id}:${e.region_id}`, [e.customer_id!, e.region_id] as const])).values()];
    const users = loadUserDroplets(db, customers, pairs).then((m) => void (b.userDroplets = m));
    // Only the endpoints serving this batch's regions need to be fresh for it.
    const slugs = new Set(b.regions.map((id) => inventory.regionSlug(id)).filter((r): r is string => r !== undefined));
    await Promise.all([timed('scrape', scraper.ensureFresh(resolved.scrapeIntervalMs, slugs)), timed('busy', b.backend.refreshBusy(b.regions)), timed('users', users)]);
  }

  /** Events that cannot be ranked at all fail at once; the rest become work. */
  function toWork(b: Batch, events: ClaimedEvent[]): Work[] {
    const work: Work[] = [];
    for (const event of events) {
      if (!event.size || event.droplet_id === null) {
        const summary = 'cannot place: the create event has no droplet or the droplet has no size.';
        b.failures.push({
          event_id: event.id,
          region_id: event.region_id,
          droplet_id: event.droplet_id,
          decision: { event_id: event.id, replica: replicaId, outcome: 'failed', server_id: null, policy, score: null, hosts_total: 0, hosts_available: 0, attempts: 1, conflicts: 0, summary },
        });
        b.out.push({ event_id: event.id, outcome: 'fail', attempts: 1, conflicts: [], summary });
        continue;
      }
      work.push({ event, size: event.size, droplet_id: event.droplet_id, attempts: 0, conflicts: [], lastRanked: [] });
    }
    return work;
  }

  /**
   * Ranks each event of the round and books its choice in the local view (later events of the round see the
   * host's room taken); events no host can take now wait or fail.
   */
  function rankRound(b: Batch, work: Work[]): Intent[] {
    const { s, userDroplets } = b;
    const now = Date.now();
    const metricsNow = scraper.hosts();
    const options = deps.rankOptions({ top: FALLBACKS });
    // Each region's hosts are turned into candidates and judged by the host-only filters once per round;
    // a reservation refreshes just its host.
    const views = new Map<number, JudgedHosts>();
    const viewOf = (regionId: number) => {
      let v = views.get(regionId);
      if (!v) views.set(regionId, (v = new JudgedHosts(inventory.candidatesFor(s, regionId, now), options)));
      return v;
    };
    const intents: Intent[] = [];
    for (const w of work) {
      w.attempts++;
      const userMap = w.event.customer_id === null ? undefined : userDroplets.get(w.event.customer_id);
      const rank = rankHosts(
        viewOf(w.event.region_id),
        { event_id: w.event.id, customer_id: w.event.customer_id ?? undefined, region_id: w.event.region_id, size: w.size },
        userMap ? { ...options, userDroplets: userMap } : options,
      );
      w.lastRanked = rank.ranked.slice(0, 3).map((r) => r.host.id);
      if (rank.outcome === 'place') {
        const chosen = rank.ranked[0]!;
        const host = s.byId.get(chosen.host.id)!;
        const summary = summarize(rank, { chosen, attempts: w.attempts, conflicts: w.conflicts });
        intents.push({
          work: w,
          host,
          event_id: w.event.id,
          region_id: w.event.region_id,
          droplet_id: w.droplet_id,
          server_id: host.id,
          expected_generation: host.generation,
          memory: w.size.memory,
          disk: w.size.disk,
          decision: decisionRow(w.event.id, 'placed', rank, summary, { server_id: host.id, score: chosen.score, attempts: w.attempts, conflicts: w.conflicts.length }),
        });
        s.reserve(host, w.event.id, w.size);
        viewOf(host.region_id).replace(s.candidate(host, metricsNow.get(host.name), now, reserved));
        if (w.event.customer_id !== null) {
          let m = userDroplets.get(w.event.customer_id);
          if (!m) userDroplets.set(w.event.customer_id, (m = new Map()));
          m.set(host.id, (m.get(host.id) ?? 0) + 1);
        }
      } else {
        const summary = summarize(rank, { attempts: w.attempts, conflicts: w.conflicts });
        if (rank.outcome === 'wait') {
          b.waits.push(w.event.id);
          if (!waitedOnce.has(w.event.id)) {
            waitedOnce.add(w.event.id);
            if (waitedOnce.size > WAIT_MEMORY) waitedOnce.delete(waitedOnce.values().next().value!);
            b.waitRows.push(decisionRow(w.event.id, 'waiting', rank, summary, { attempts: w.attempts, conflicts: w.conflicts.length }));
          }
        } else {
          b.failures.push({ event_id: w.event.id, region_id: w.event.region_id, droplet_id: w.droplet_id, decision: decisionRow(w.event.id, 'failed', rank, summary, { attempts: w.attempts, conflicts: w.conflicts.length }) });
        }
        b.out.push({ event_id: w.event.id, outcome: rank.outcome, attempts: w.attempts, conflicts: w.conflicts, summary });
      }
    }
    return intents;
  }

  /** Commits the round; a deadlock victim or lock wait timeout counts every placement as a conflict. */
  async function commit(b: Batch, intents: Intent[]): Promise<{ result: BackendRound; lockFailure: boolean }> {
    try {
      return { result: await b.backend.commit(intents), lockFailure: false };
    } catch (err) {
      if (!isLockFailure(err)) {
        for (const i of intents) unbook(b, i);
        throw err;
      }
      // InnoDB chose this transaction as a deadlock victim (or a lock wait timed out): nothing was
      // committed; treat every placement as a conflict and re-rank, like a lost CAS.
      return { result: { committed: [], conflicted: intents, conflictedHosts: [...new Set(intents.map((i) => i.server_id))], lost: [], fenced: [] }, lockFailure: true };
    }
  }

  /** Records what the round committed, lost or was fenced from; returns its conflicts (to re-rank). */
  async function settle(b: Batch, result: BackendRound): Promise<Intent[]> {
    const { s, out } = b;
    const committedHosts = new Set<number>();
    const commitNow = performance.now();
    for (const i of result.committed as Intent[]) {
      committedHosts.add(i.server_id);
      metrics.placements.inc({ policy });
      metrics.latency.observe((commitNow - i.work.event.claimed_at) / 1000);
      if (Number.isFinite(i.work.event.created_ms)) metrics.queueSeconds.observe(Math.max(0, Date.now() - i.work.event.created_ms) / 1000);
      out.push({ event_id: i.event_id, outcome: 'placed', server_id: i.server_id, server_name: i.host.name, score: i.decision.score ?? undefined, attempts: i.work.attempts, conflicts: i.work.conflicts, summary: i.decision.summary });
    }
    for (const id of result.swappedHosts ?? committedHosts) s.byId.get(id)!.generation += 1;
    for (const i of (result.unconfirmed ?? []) as Intent[]) {
      // The reservation stands (the ledger counts it); the next batch that meets the event finishes it.
      out.push({ event_id: i.event_id, outcome: 'wait', server_id: i.server_id, server_name: i.host.name, attempts: i.work.attempts, conflicts: i.work.conflicts, summary: `reserved on ${i.host.name}; Harpoon did not confirm the placement yet: retried.` });
    }
    for (const i of result.lost as Intent[]) {
      unbook(b, i);
      out.push({ event_id: i.event_id, outcome: 'claim-lost', attempts: i.work.attempts, conflicts: i.work.conflicts, summary: 'lease lost: the event was claimed by another replica or changed before the commit.' });
    }
    const byEventWrites = mode.fences.reason() === 'event-writes';
    for (const i of result.fenced as Intent[]) {
      unbook(b, i);
      const summary = byEventWrites
        ? 'handed back: event-writes went to full before the commit; the event is placed through Harpoon.'
        : 'handed back: the scheduling cutover gave this region back to Scheduler V1 before the commit.';
      out.push({ event_id: i.event_id, outcome: 'handed-back', attempts: i.work.attempts, conflicts: i.work.conflicts, summary });
    }
    // After event-writes went to full no direct write to events may follow: the leases just expire.
    if (!byEventWrites) await b.backend.release(result.fenced.map((i) => i.event_id), 0);
    return result.conflicted as Intent[];
  }

  /**
   * Re-reads the hosts that refused, the fallbacks the last ranking had lined up, and the busy lists;
   * notes each conflict; returns the work to re-rank (events out of attempts are handed back).
   */
  async function afterConflicts(b: Batch, conflicted: Intent[], conflictedHosts: number[], lockFailure: boolean, phase: (name: string, since: number) => void): Promise<Work[]> {
    const expected = new Map(conflicted.map((i) => [i.server_id, i.expected_generation]));
    for (const i of conflicted) unbook(b, i);
    const reread = new Set<number>(conflictedHosts);
    for (const i of conflicted) for (const id of i.work.lastRanked) reread.add(id);
    const mark = performance.now();
    await b.s.reread([...reread]);
    await b.backend.refreshBusy(b.regions);
    phase('reread', mark);
    for (const hostId of conflictedHosts) {
      const kind = lockFailure ? 'lock' : b.s.byId.get(hostId)!.generation !== expected.get(hostId) ? 'generation' : 'capacity';
      metrics.conflicts.inc({ kind });
      for (const i of conflicted) if (i.server_id === hostId) i.work.conflicts.push({ host: i.host.name, kind });
    }
    const work: Work[] = [];
    const handBack: number[] = [];
    for (const i of conflicted) {
      if (i.work.attempts >= resolved.maxAttempts) {
        handBack.push(i.event_id);
        b.out.push({ event_id: i.event_id, outcome: 'conflict-exhausted', attempts: i.work.attempts, conflicts: i.work.conflicts, summary: `handed back after ${i.work.attempts} attempts that all conflicted.` });
      } else {
        work.push(i.work);
      }
    }
    await b.backend.release(handBack, 0);
    return work;
  }

  /** Waits go back with a delay, first waits and failures are recorded. */
  async function finish(b: Batch): Promise<void> {
    await b.backend.release(b.waits, resolved.waitRetryMs);
    await b.backend.recordWaits(b.waitRows);
    const failed = new Set(await b.backend.fail(b.failures));
    for (const f of b.failures) {
      if (!failed.has(f.event_id)) {
        const d = b.out.find((o) => o.event_id === f.event_id);
        if (d) d.outcome = 'claim-lost';
      }
    }
  }

  return async function placeBatch(): Promise<EventDecision[]> {
    const phases: Record<string, number> = {};
    const phase = (name: string, since: number) => {
      phases[name] = (phases[name] ?? 0) + Math.round((performance.now() - since) * 10) / 10;
    };
    const claimed = await claim(phase);
    if (!claimed) return [];
    const { taken, preferred } = claimed;
    const events = taken.events;
    if (events.length === 0 && taken.decided.length === 0) return [];
    const endBatch = metrics.rounds.startTimer();
    metrics.claimed.inc(events.length + taken.decided.length);
    log.debug({ events: events.length, finished: taken.decided.length, backend: claimed.backend.kind }, 'claimed');
    if (faults?.pauseAfterClaimMs) await sleep(faults.pauseAfterClaimMs);
    const b: Batch = {
      s: claimed.s,
      backend: claimed.backend,
      regions: [...new Set(events.map((e) => e.region_id))],
      userDroplets: new Map(),
      out: taken.decided.map((d) => ({ ...d, attempts: 1, conflicts: [] })),
      failures: [],
      waits: [],
      waitRows: [],
    };
    await prepare(b, events, phase);
    for (const d of taken.decided) if (d.outcome === 'placed') metrics.placements.inc({ policy });

    let work = toWork(b, events);
    let rounds = 0;
    while (work.length > 0) {
      rounds++;
      const rankStarted = performance.now();
      const intents = rankRound(b, work);
      phase('rank', rankStarted);
      if (intents.length === 0) break;
      if (faults?.pauseBeforeCommitMs) await sleep(faults.pauseBeforeCommitMs);
      const commitStarted = performance.now();
      const { result, lockFailure } = await commit(b, intents);
      phase('commit', commitStarted);
      const conflicted = await settle(b, result);
      if (conflicted.length === 0) break;
      work = await afterConflicts(b, conflicted, result.conflictedHosts, lockFailure, phase);
    }

    const mark = performance.now();
    await finish(b);
    phase('finish', mark);
    const tally: Record<string, number> = {};
    for (const d of b.out) {
      metrics.decisions.inc({ outcome: d.outcome });
      tally[d.outcome] = (tally[d.outcome] ?? 0) + 1;
    }
    endBatch();
    const example = b.out.find((d) => d.outcome !== 'placed');
    log.debug({ claimed: events.length + taken.decided.length, rounds, outcomes: tally, ms: phases, preferred, ...(example ? { example: example.summary } : {}) }, 'batch');
    return b.out;
  };
}

