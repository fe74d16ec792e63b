import type { Knex } from 'knex';
import { loadUserDroplets } from './claims.ts';
import type { SchedulerMetrics } from './metrics.ts';
import type { RankRequest, RankResult } from './rank.ts';
import { loadHostChanges, rewindTo, rewindUserDroplets, type HostChange, type HostRewind } from './rewind.ts';
import type { HostStore } from './state.ts';

export interface ShadowStats {
  judged: number;
  agree: number;
  differ: number;
  /** Differences by category (see categorize). */
  by_category: Record<string, number>;
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
}

const PAGE = 1000;

/**
 * Shadow mode: for every create event Scheduler V1 decides, compute what V2
 * would have decided, write nothing, and count agreement. V2 judges with
 * its own view (metrics, ledger, busy list) rewound to the moment V1
 * decided (scheduler/rewind.ts): what was placed from that event on is left
 * out — executed or not —, what finished since is put back.
 *
 * Categories of difference (label `category` of
 * scheduler_v2_shadow_decisions_total{result="differ"}):
 * - `filtered-<filter>`: V1's host is rejected by that V2 filter (e.g. `filtered-metrics-stale`);
 * - `ranked-lower`: V1's host passes every V2 filter but V2's policy prefers another;
 * - `unknown-host`: V1's host is not one V2 schedules;
 * - `v2-wait` / `v2-fail`: V1 placed, V2 would have waited / failed the event;
 * - `v1-failed`: V1 failed the event, V2 would have placed it or waited.
 * Agreement has `category="none"`.
 */
export function createShadow(deps: {
  db: Knex;
  metrics: SchedulerMetrics;
  prepare(): Promise<HostStore>;
  /**
   * Re-reads the ledger (and busy lists) of these hosts: the ones V1 just
   * placed on and every host a change since touched. The inventory's ledger
   * is reloaded only every 30 s; the rewind undoes changes the ledger holds,
   * so it must hold all of them.
   */
  reread(hostIds: number[]): Promise<void>;
  rank(regionId: number, request: RankRequest, rewindOf: (serverId: number) => HostRewind, userDroplets: ReadonlyMap<number, number> | undefined): RankResult;
}) {
  let cursor: number | undefined;
  const pending = new Set<number>();
  const stats: ShadowStats = { judged: 0, agree: 0, differ: 0, by_category: {}, agreement_ratio: null };

  const select = () =>
    deps
      .db('events as e')
      .leftJoin('droplets as d', 'd.id', 'e.droplet_id')
      .leftJoin('sizes as z', 'z.id', 'd.size_id')
      .where('e.type', 'create')
      .select('e.id', 'e.server_id', 'e.status', 'e.region_id', 'e.droplet_id', 'e.claimed_by', 'd.customer_id', 'z.slug', 'z.memory', 'z.vcpus', 'z.disk')
      .select(deps.db.raw('ROUND(UNIX_TIMESTAMP(IF(e.server_id IS NULL, e.finished_at, e.available_at)) * 1000) AS decided_ms'));

  /** Lowest id of an event that was still open when the last pass began: older ones cannot have changed since. */
  let floor = 0;
  const openFloor = async (): Promise<number | undefined> => {
    const [row] = (await deps.db('events').whereIn('status', ['pending', 'running']).min('id as id')) as Array<{ id: number | string | null }>;
    return row?.id === null || row?.id === undefined ? undefined : Number(row.id);
  };

  const decided = (r: EventRow) => r.server_id !== null || r.status === 'error';

  function count(result: 'agree' | 'differ', category: string): void {
    stats.judged++;
    stats[result]++;
    if (result === 'differ') stats.by_category[category] = (stats.by_category[category] ?? 0) + 1;
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
      const moment = { event_id: id, at_ms: row.decided_ms === null ? Date.now() : Number(row.decided_ms) };
      const userDroplets = rewindUserDroplets(row.customer_id === null ? undefined : users.get(row.customer_id), row.customer_id, changes, moment);
      const result = deps.rank(
        row.region_id,
        { event_id: id, customer_id: row.customer_id ?? undefined, region_id: row.region_id, size: { slug: row.slug, memory: Number(row.memory), vcpus: Number(row.vcpus), disk: Number(row.disk) } },
        rewindTo(changes, moment),
        userDroplets,
      );
      const v2Host = result.outcome === 'place' ? result.ranked[0]!.host.id : undefined;
      if (row.server_id === null) {
        // V1 failed it.
        count(result.outcome === 'fail' ? 'agree' : 'differ', result.outcome === 'fail' ? 'none' : 'v1-failed');
      } else if (v2Host === row.server_id) {
        count('agree', 'none');
      } else if (result.outcome !== 'place') {
        count('differ', result.outcome === 'wait' ? 'v2-wait' : 'v2-fail');
      } else {
        const verdict = result.verdicts?.find((v) => v.server_id === row.server_id);
        count('differ', !verdict ? 'unknown-host' : verdict.passed ? 'ranked-lower' : `filtered-${verdict.filter}`);
      }
    }
  }

  const snapshot = (): ShadowStats => ({ ...stats, by_category: { ...stats.by_category } });

  return {
    stats: snapshot,
    async once(): Promise<ShadowStats> {
      await deps.prepare();
      if (cursor === undefined) {
        // Judge only what is decided from now on: the first pass records where the queue stands.
        const [row] = (await deps.db('events').max('id as max')) as Array<{ max: number | string | null }>;
        cursor = Number(row?.max ?? 0);
        floor = Math.min((await openFloor()) ?? Infinity, cursor + 1);
        const waiting = (await deps.db('events').where({ type: 'create', status: 'pending' }).whereNull('server_id').select('id')) as Array<{ id: number | string }>;
        for (const w of waiting) pending.add(Number(w.id));
        return snapshot();
      }
      const fromId = floor;
      floor = Math.min((await openFloor()) ?? Infinity, cursor + 1);
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
      const times = toJudge.map((r) => r.decided_ms).filter((t): t is number | string => t !== null).map(Number);
      const changes = toJudge.length === 0 ? [] : await loadHostChanges(deps.db, times.length > 0 ? Math.min(...times) : Date.now(), fromId);
      // After the changes are read: the ledger then holds every change the rewind undoes.
      await deps.reread([...new Set([...toJudge.map((r) => r.server_id), ...changes.map((c) => c.server_id)].filter((id): id is number => id !== null))]);
      await judge(toJudge, changes);
      return snapshot();
    },
  };
}
