import type { Knex } from 'knex';
import { countDropletsWithoutEvent, countDuplicateExecutions, countLostEvents, countOvercommittedHosts } from '../../lib/invariants.ts';
import type { GateReading } from './gates.ts';
import type { InvariantGate } from './plan.ts';
import { boundedReading } from './providers.ts';

const WHAT: Record<InvariantGate['check'], string> = {
  lost_events: 'lost events',
  duplicate_executions: 'double executions',
  overcommitted_hosts: 'over-committed hosts',
  orphan_droplets: 'droplets without a create event',
};

/**
 * Invariant gates: the database's own count of lost events, double
 * executions, over-committed hosts and orphan droplets (lib/invariants.ts),
 * taken at every analysis run. Events and droplets are counted from the
 * first reading on (what this admin saw happen), so seeded history never
 * blocks a step.
 */
export function createInvariantProvider(options: { db: Knex; hostReserved: { memory: number; disk: number } }) {
  const { db } = options;
  let since: Promise<{ event: number; droplet: number }> | undefined;
  const start = () =>
    (since ??= (async () => {
      const [[row]] = (await db.raw('SELECT (SELECT COALESCE(MAX(id), 0) FROM events) AS e, (SELECT COALESCE(MAX(id), 0) FROM droplets) AS d')) as [[{ e: number; d: number }]];
      return { event: Number(row.e), droplet: Number(row.d) };
    })().catch((err: unknown) => {
      since = undefined;
      throw err;
    }));
  return {
    async evaluate(gate: InvariantGate, base: Pick<GateReading, 'gate' | 'kind' | 'service'>): Promise<GateReading> {
      const from = await start();
      const age = gate.stuck_after_seconds ?? 120;
      let n: number;
      switch (gate.check) {
        case 'lost_events':
          n = await countLostEvents(db, { sinceEventId: from.event, olderThanSeconds: age });
          break;
        case 'duplicate_executions':
          n = await countDuplicateExecutions(db, { sinceEventId: from.event });
          break;
        case 'overcommitted_hosts':
          n = await countOvercommittedHosts(db, options.hostReserved);
          break;
        case 'orphan_droplets':
          n = await countDropletsWithoutEvent(db, { sinceDropletId: from.droplet, olderThanSeconds: age });
          break;
      }
      return boundedReading(base, n, { max: gate.max ?? 0 }, WHAT[gate.check]);
    },
  };
}
