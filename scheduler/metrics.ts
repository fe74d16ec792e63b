import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EndpointStatus } from './scraper.ts';

export type DecisionOutcome = 'placed' | 'wait' | 'fail' | 'conflict-exhausted' | 'claim-lost' | 'handed-back';
export type ConflictKind = 'generation' | 'capacity' | 'lock';

/** Scheduler V2's own metrics (the names are listed in scheduler/README.md). */
export function createSchedulerMetrics(registry: Registry, sources: { endpoints: () => EndpointStatus[]; hostCounts: () => Record<'fresh' | 'stale' | 'missing', number> }) {
  const registers = [registry];
  const placements = new Counter({
    name: 'scheduler_v2_placements_total',
    help: 'Create events placed on a host (committed), by scoring policy.',
    labelNames: ['policy'],
    registers,
  });
  const conflicts = new Counter({
    name: 'scheduler_v2_conflicts_total',
    help: 'Compare-and-swap failures: generation (another replica placed on the host first), capacity (the ledger had no room), lock (deadlock victim, retried).',
    labelNames: ['kind'],
    registers,
  });
  const decisions = new Counter({
    name: 'scheduler_v2_decisions_total',
    help: 'Decisions by outcome: placed, wait (retried later), fail (event set to error), conflict-exhausted (handed back), claim-lost (lease taken over), handed-back (the scheduling cutover gave the region back to V1 before the commit).',
    labelNames: ['outcome'],
    registers,
  });
  const harpoonMode = new Gauge({
    name: 'scheduler_v2_harpoon_mode',
    help: '1 while the replica takes its queue from Harpoon and places through it (event-writes full), 0 while it works over MySQL.',
    registers,
  });
  const claimed = new Counter({
    name: 'scheduler_v2_claimed_events_total',
    help: 'Create events leased by this replica (an event that waits is claimed again later).',
    registers,
  });
  const latency = new Histogram({
    name: 'scheduler_v2_placement_latency_seconds',
    help: 'From the claim of an event to the commit of its placement.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const queueSeconds = new Histogram({
    name: 'scheduler_v2_event_queue_seconds',
    help: 'From the creation of a create event to the commit of its placement.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const rounds = new Histogram({
    name: 'scheduler_v2_batch_duration_seconds',
    help: 'One claim-rank-commit batch of a replica.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const scrapeSeconds = new Histogram({
    name: 'scheduler_v2_scrape_duration_seconds',
    help: 'Time to scrape one host-metrics endpoint.',
    labelNames: ['endpoint', 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  new Gauge({
    name: 'scheduler_v2_scrape_age_seconds',
    help: 'Seconds since the last successful scrape of each host-metrics endpoint (-1: never).',
    labelNames: ['endpoint'],
    registers,
    collect() {
      this.reset();
      const now = Date.now();
      for (const e of sources.endpoints()) this.set({ endpoint: e.name }, e.last_success_ms === undefined ? -1 : (now - e.last_success_ms) / 1000);
    },
  });
  new Gauge({
    name: 'scheduler_v2_hosts',
    help: 'Hosts in scope by metrics freshness: fresh, stale (older than maxStalenessMs), missing (no complete metrics).',
    labelNames: ['metrics'],
    registers,
    collect() {
      const counts = sources.hostCounts();
      for (const [k, v] of Object.entries(counts)) this.set({ metrics: k }, v);
    },
  });
  const shadow = new Counter({
    name: 'scheduler_v2_shadow_decisions_total',
    help: 'Shadow mode: V2 decisions computed for events V1 decided, by agreement and category of difference.',
    labelNames: ['result', 'category'],
    registers,
  });
  const explainInflight = new Gauge({
    name: 'scheduler_v2_explain_inflight',
    help: 'POST /explain requests being answered now (beside placement; at most explainConcurrency).',
    registers,
  });
  const explainBusy = new Counter({
    name: 'scheduler_v2_explain_busy_total',
    help: 'POST /explain requests refused with 429 SCHEDULER_ERR_EXPLAIN_BUSY because explainConcurrency were already being answered.',
    registers,
  });
  return { placements, conflicts, decisions, claimed, harpoonMode, latency, queueSeconds, rounds, scrapeSeconds, shadow, explainInflight, explainBusy };
}

export type SchedulerMetrics = ReturnType<typeof createSchedulerMetrics>;
