import type { Knex } from 'knex';
import type { Logger } from '../lib/logger.ts';
import { loadUserDroplets } from './claims.ts';
import type { SchedulerMetrics } from './metrics.ts';
import type { RankedHost, RankRequest, RankResult } from './rank.ts';
import { loadHostChanges, rewindTo, rewindUserDroplets, type DecisionMoment, type HostChange, type HostRewind } from './rewind.ts';
import type { HostStore } from './state.ts';

export interface ShadowStats {
  judged: number;
  agree: number;
  differ: number;
  /** Differences by category (see createShadow). */
  by_category: Record<string, number>;
  /** Agreements other than exact ones (`category` other than `none`), by category: `earlier-read`. */
  agree_by_category: Record<string, number>;
  /** agree / judged, or null before the first judgement. */
  agreement_ratio: number | null;
}

interface EventRow {
  id: number | string;
  server_id: number | null;
  status: string;
  region_id: number;
  droplet_id: number | null;
  claimed_by: string | null;
  customer_id: number | null;
  slug: string | null;
  memory: number | null;
  vcpus: number | null;
  disk: number | null;
  /** When V1 placed it (available_at) or failed it (finished_at), ms on the database clock. */
  decided_ms: number | string | null;
  /** events.created_at in ms: V1 cannot have read the hosts for this event before. */
  created_ms: number | string | null;
}

const PAGE = 1000;
/** Earlier read moments tried per difference (the latest first): bounds a pass's cost whatever the churn. */
const MAX_READ_MOMENTS = 16;

/**
 * Shadow mode: for every create event Scheduler V1 decides, compute what V2
 * would have decided, write nothing, and count agreement. V2 judges with
 * its own view (metrics, ledger, busy list) rewound to the moment V1
 * decided (scheduler/rewind.ts): what was placed from that event on is left
 * out — executed or not —, what finished since is put back.
 *
 * V1 reads the hosts once per pass and then places the pass's events one
 * by one, so it ranked an event with rows read somewhere between the
 * event's creation and its placement; a host whose create (or restore, or
 * reboot) finished in between was still busy for V1 (and V1 marks the hosts
 * it placed on earlier in the pass busy, however soon they finish). When
 * V2's choice at the placement moment differs and V1's host passed every V2
 * filter, the judgement is repeated with the finishes undone from the
 * earliest moment V1 may have read (readMoments): if V2 then takes V1's
 * host, the two agree as of a moment V1 may have read its rows
 * (`result="agree", category="earlier-read"`). Placements are never moved:
 * a policy that orders hosts otherwise, or a filter that rejects V1's host,
 * still differs.
 *
 * Categories of difference (label `category` of
 * scheduler_v2_shadow_decisions_total{result="differ"}):
 * - `filtered-<filter>`: V1's host is rejected by that V2 filter (e.g. `filtered-metrics-stale`);
 * - `ranked-lower`: V1's host passes every V2 filter but V2's policy prefers another;
 * - `unknown-host`: V1's host is not one V2 schedules;
 * - `v2-wait` / `v2-fail`: V1 placed, V2 would have waited / failed the event;
 * - `v1-failed`: V1 failed the event, V2 would have placed it or waited.
 * Agreement has `category="none"`, or `earlier-read` (above).
 */
export function createShadow(deps: {
  db: Knex;
  metrics: SchedulerMetrics;
  /** Each difference is logged at info, with V1's and V2's hosts as V2 saw them (what to read when parity is low). */
  log?: Logger;
  prepare(): Promise<HostStore>;
  /**
   * Re-reads the ledger (and busy lists) of these hosts: the ones V1 just
   * placed on and every host a change since touched. The inventory's ledger
   * is reloaded only every 30 s; the rewind undoes changes the ledger holds,
   * so it must hold all of them.
   */
  reread(hostIds: number[]): Promise<void>;
  /** V2's ranking of the region as rewound; `choiceOnly`: just the first host, no verdicts (the earlier-read retries). */
  rank(regionId: number, request: RankRequest, rewindOf: (serverId: number) => HostRewind, userDroplets: ReadonlyMap<number, number> | undefined, choiceOnly?: boolean): RankResult;
}) {
  let cursor: number | undefined;
  const pending = new Set<number>();
  const stats: ShadowStats = { judged: 0, agree: 0, differ: 0, by_category: {}, agree_by_category: {}, agreement_ratio: null };

  const select = () =>
    deps
      .db('events as e')
      .leftJoin('droplets as d', 'd.id', 'e.droplet_id')
      .leftJoin('sizes as z', 'z.id', 'd.size_id')
      .where('e.type', 'create')
      .select('e.id', 'e.server_id', 'e.status', 'e.region_id', 'e.droplet_id', 'e.claimed_by', 'd.customer_id', 'z.slug', 'z.memory', 'z.vcpus', 'z.disk')
      .select(deps.db.raw('ROUND(UNIX_TIMESTAMP(IF(e.server_id IS NULL, e.finished_at, e.available_at)) * 1000) AS decided_ms'))
      .select(deps.db.raw('ROUND(UNIX_TIMESTAMP(e.created_at) * 1000) AS created_ms'));

  /**
   * Per pass, when it began (Date.now() after the read) and the lowest id of an event still open then:
   * older ones cannot have changed since. A pass reads changes from the floor of the last pass that
   * began before its earliest moment (an event's creation can be several passes back).
   */
  const floors: Array<{ at: number; floor: number }> = [];
  const recordFloor = async (): Promise<void> => {
    const [row] = (await deps.db('events').whereIn('status', ['pending', 'running']).min('id as id')) as Array<{ id: number | string | null }>;
    const open = row?.id === null || row?.id === undefined ? Infinity : Number(row.id);
    floors.push({ at: Date.now(), floor: Math.min(open, cursor! + 1) });
  };
  const floorAt = (ms: number): number => {
    let i = 0;
    while (i + 1 < floors.length && floors[i + 1]!.at <= ms) i++;
    // Older records are not needed again (moments only move on), but the one used is kept.
    floors.splice(0, i);
    return floors[0]!.floor;
  };

  const decided = (r: EventRow) => r.server_id !== null || r.status === 'error';

  function count(result: 'agree' | 'differ', category: string): void {
    stats.judged++;
    stats[result]++;
    if (result === 'differ') stats.by_category[category] = (stats.by_category[category] ?? 0) + 1;
    else if (category !== 'none') stats.agree_by_category[category] = (stats.agree_by_category[category] ?? 0) + 1;
    stats.agreement_ratio = stats.agree / stats.judged;
    deps.metrics.shadow.inc({ result, category });
  }

  async function judge(rows: EventRow[], changes: readonly HostChange[]): Promise<void> {
    if (rows.length === 0) return;
    const customers = [...new Set(rows.map((r) => r.customer_id).filter((c): c is number => c !== null))];
    const users = await loadUserDroplets(deps.db, customers);
    for (const row of rows) {
      // Placed by a V2 replica (active mode somewhere), or not a droplet create: not V1's decision to judge.
      if (row.claimed_by !== null || row.slug === null) continue;
      const id = Number(row.id);
      // Unknown decision time (none recorded): judge as of now, leaving out only this event and later ones.
      const moment: DecisionMoment = { event_id: id, at_ms: row.decided_ms === null ? Date.now() : Number(row.decided_ms) };
      const userDroplets = rewindUserDroplets(row.customer_id === null ? undefined : users.get(row.customer_id), row.customer_id, changes, moment);
      const request: RankRequest = {
        event_id: id,
        customer_id: row.customer_id ?? undefined,
        region_id: row.region_id,
        size: { slug: row.slug, memory: Number(row.memory), vcpus: Number(row.vcpus), disk: Number(row.disk) },
      };
      const result = deps.rank(row.region_id, request, rewindTo(changes, moment), userDroplets);
      const v2Host = result.outcome === 'place' ? result.ranked[0]!.host.id : undefined;
      if (row.server_id === null) {
        // V1 failed it.
        count(result.outcome === 'fail' ? 'agree' : 'differ', result.outcome === 'fail' ? 'none' : 'v1-failed');
      } else if (v2Host === row.server_id) {
        count('agree', 'none');
      } else if (result.outcome !== 'place') {
        const category = result.outcome === 'wait' ? 'v2-wait' : 'v2-fail';
        count('differ', category);
        deps.log?.info({ event_id: id, category, lag_ms: Date.now() - moment.at_ms, v1: { id: row.server_id }, rejected: result.rejected }, 'shadow difference');
      } else {
        const verdict = result.verdicts?.find((v) => v.server_id === row.server_id);
        const category = !verdict ? 'unknown-host' : verdict.passed ? 'ranked-lower' : `filtered-${verdict.filter}`;
        const serverId = row.server_id;
        if (category === 'ranked-lower' && row.created_ms !== null) {
          const read = readMoments(changes, moment, serverId, Number(row.created_ms));
          if (read.some((readMs) => deps.rank(row.region_id, request, rewindTo(changes, { ...moment, read_ms: readMs }), userDroplets, true).ranked[0]?.host.id === serverId)) {
            count('agree', 'earlier-read');
            continue;
          }
        }
        count('differ', category);
        deps.log?.info({ event_id: id, category, lag_ms: Date.now() - moment.at_ms, v1: describe(result.ranked.find((r) => r.host.id === serverId)) ?? { id: serverId, filter: verdict?.filter, message: verdict?.message }, v2: describe(result.ranked[0]), size_mb: Number(row.memory) }, 'shadow difference');
      }
    }
  }

  const snapshot = (): ShadowStats => ({ ...stats, by_category: { ...stats.by_category }, agree_by_category: { ...stats.agree_by_category } });

  return {
    stats: snapshot,
    async once(): Promise<ShadowStats> {
      await deps.prepare();
      if (cursor === undefined) {
        // Judge only what is decided from now on: the first pass records where the queue stands.
        const [row] = (await deps.db('events').max('id as max')) as Array<{ max: number | string | null }>;
        cursor = Number(row?.max ?? 0);
        await recordFloor();
        const waiting = (await deps.db('events').where({ type: 'create', status: 'pending' }).whereNull('server_id').select('id')) as Array<{ id: number | string }>;
        for (const w of waiting) pending.add(Number(w.id));
        return snapshot();
      }
      await recordFloor();
      const toJudge: EventRow[] = [];
      for (;;) {
        const page = (await select().where('e.id', '>', cursor).orderBy('e.id').limit(PAGE)) as EventRow[];
        for (const r of page) {
          cursor = Math.max(cursor, Number(r.id));
          if (decided(r)) toJudge.push(r);
          else pending.add(Number(r.id));
        }
        if (page.length < PAGE) break;
      }
      const ids = [...pending];
      for (let i = 0; i < ids.length; i += PAGE) {
        const rows = (await select().whereIn('e.id', ids.slice(i, i + PAGE))) as EventRow[];
        const seen = new Set<number>();
        for (const r of rows) {
          seen.add(Number(r.id));
          if (decided(r)) {
            pending.delete(Number(r.id));
            toJudge.push(r);
          } else if (r.status !== 'pending') {
            pending.delete(Number(r.id));
          }
        }
        for (const id of ids.slice(i, i + PAGE)) if (!seen.has(id)) pending.delete(id);
      }
      toJudge.sort((a, b) => Number(a.id) - Number(b.id));
      // From the earliest moment V1 may have read its rows for one of them: its event's creation.
      const times = toJudge.flatMap((r) => [r.decided_ms, r.created_ms]).filter((t): t is number | string => t !== null).map(Number);
      const since = times.length > 0 ? Math.min(...times) : Date.now();
      const changes = toJudge.length === 0 ? [] : await loadHostChanges(deps.db, since, floorAt(since));
      // After the changes are read: the ledger then holds every change the rewind undoes.
      await deps.reread([...new Set([...toJudge.map((r) => r.server_id), ...changes.map((c) => c.server_id)].filter((id): id is number => id !== null))]);
      await judge(toJudge, changes);
      return snapshot();
    },
  };
}

/**
 * The moments at which V1 may have read the rows it placed an event with,
 * earliest first, that give V1's host a different view (at most
 * MAX_READ_MOMENTS). V1 read them after the event was created, after its
 * previous pass (which placed any event with a higher id placed before this
 * one: a pass places in id order), and after the last busy event on V1's
 * host finished (else the host was busy for V1). Going earlier only makes
 * other hosts busy again or fuller, never better, so the earliest such
 * moment is the one most likely to make V2 agree; later ones differ only by
 * destroys finished on V1's host (V1's host emptier).
 */
function readMoments(changes: readonly HostChange[], moment: DecisionMoment, serverId: number, createdMs: number): number[] {
  let from = createdMs;
  for (const c of changes) {
    if (c.type === 'create' && c.id > moment.event_id && c.placed_ms !== null && c.placed_ms < moment.at_ms) from = Math.max(from, c.placed_ms + 1);
    if (c.server_id === serverId && c.type !== 'destroy' && c.id !== moment.event_id && c.finished_ms !== null && c.finished_ms < moment.at_ms) from = Math.max(from, c.finished_ms + 1);
  }
  if (from >= moment.at_ms) return [];
  const moments = new Set<number>([from]);
  for (const c of changes) {
    if (c.server_id === serverId && c.type === 'destroy' && c.finished_ms !== null && c.finished_ms >= from && c.finished_ms < moment.at_ms) moments.add(c.finished_ms + 1);
  }
  return [...moments].sort((a, b) => a - b).slice(0, MAX_READ_MOMENTS);
}

/** A ranked host, for the difference log. */
function describe(h: RankedHost | undefined) {
  return h && { id: h.host.id, name: h.host.name, score: h.score, tier: h.tier, memfree: h.host.memfree, vmcount: h.host.vmcount, metrics_age_ms: h.host.metrics_age_ms };
}
