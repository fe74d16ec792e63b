import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EventSourceName } from './event-source.ts';

/** What the gauges read when scraped. */
export interface RouterMetricsView {
  connected(): number;
  inflight(): number;
  source(): EventSourceName;
  harpoonConnected(): boolean;
  harpoonCursor(): number | undefined;
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;

/**
 * The Event Router's metrics (router/README.md lists them), registered on `registry`.
 *
 * @example
 *   const metric = createRouterMetrics(registry, view);
 *   metric.delivered.inc();
 */
export function createRouterMetrics(registry: Registry, view: RouterMetricsView) {
  return {
    connected: new Gauge({
      name: 'router_connected_agents',
      help: 'Hypervisor agents holding an event stream to this router.',
      registers: [registry],
      collect() {
        this.set(view.connected());
      },
    }),
    pending: new Gauge({
      name: 'router_pending_events',
      help: "Placed events of this router's region not yet claimed (deliverable backlog), as of the last poll.",
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'router_inflight_events',
      help: 'Events this router claimed or re-sent and has not seen acknowledged.',
      registers: [registry],
      collect() {
        this.set(view.inflight());
      },
    }),
    delivered: new Counter({ name: 'router_events_delivered_total', help: 'Events written to an agent stream for the first time.', registers: [registry] }),
    redelivered: new Counter({
      name: 'router_events_redelivered_total',
      help: 'Claimed, unacknowledged events written again (after a reconnect, a router restart, or a stale claim).',
      registers: [registry],
    }),
    acked: new Counter({ name: 'router_events_acked_total', help: 'Acknowledgements that recorded an execution.', registers: [registry] }),
    duplicateAcks: new Counter({
      name: 'router_ack_duplicates_total',
      help: 'Acknowledgements of events already done (harmless repeats; nothing recorded).',
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'router_delivery_latency_seconds',
      help: "Time from an event's available_at to its first write on its agent's stream.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    queries: new Counter({
      name: 'router_db_queries_total',
      help: 'Statements this router sent to MySQL, by query.',
      labelNames: ['query'],
      registers: [registry],
    }),
    pollSeconds: new Histogram({
      name: 'router_poll_duration_seconds',
      help: 'Time for one poll: state, backlog, pending, claim, context, delivery.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    takeovers: new Counter({
      name: 'router_stream_takeovers_total',
      help: 'Streams opened for a hypervisor that already held one: replaced (the old one ends) or refused (rate-limited).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    pollErrors: new Counter({ name: 'router_poll_errors_total', help: 'Polls that failed (retried next interval).', registers: [registry] }),
    slowCutoffs: new Counter({
      name: 'router_stream_slow_cutoffs_total',
      help: 'Agent streams cut off because the agent stopped reading (over 1 MiB unsent); it reconnects and its unacked events are re-sent.',
      registers: [registry],
    }),
    switches: new Counter({
      name: 'router_switches_total',
      help: 'Streams ended with `event: switch` because their hypervisor is no longer routed to the router.',
      registers: [registry],
    }),
    source: new Gauge({
      name: 'router_event_source',
      help: 'Where the router reads events and writes claims and acks: 1 for the current source (mysql or harpoon).',
      labelNames: ['source'],
      registers: [registry],
      collect() {
        const source = view.source();
        this.set({ source: 'mysql' }, source === 'mysql' ? 1 : 0);
        this.set({ source: 'harpoon' }, source === 'harpoon' ? 1 : 0);
      },
    }),
    sourceSwitches: new Counter({ name: 'router_source_switches_total', help: 'Switches of the event source, by the source switched to.', labelNames: ['to'], registers: [registry] }),
    harpoonLag: new Histogram({
      name: 'router_harpoon_stream_lag_seconds',
      help: "Time from a change's commit in Harpoon to its arrival on this router's stream.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    harpoonReconnects: new Counter({ name: 'router_harpoon_stream_reconnects_total', help: "Times this router's Harpoon stream dropped and resumed from its cursor.", registers: [registry] }),
    harpoonConnected: new Gauge({
      name: 'router_harpoon_stream_connected',
      help: '1 while the Harpoon stream is open (Harpoon source only).',
      registers: [registry],
      collect() {
        this.set(view.harpoonConnected() ? 1 : 0);
      },
    }),
    harpoonCursor: new Gauge({
      name: 'router_harpoon_stream_cursor',
      help: 'The last Harpoon stream cursor this router received.',
      registers: [registry],
      collect() {
        this.set(view.harpoonCursor() ?? 0);
      },
    }),
    harpoonRequests: new Counter({
      name: 'router_harpoon_requests_total',
      help: 'Requests this router sent to Harpoon, by purpose (catchup, claim, done, event).',
      labelNames: ['op'],
      registers: [registry],
    }),
    harpoonClaim: new Histogram({
      name: 'router_harpoon_claim_seconds',
      help: 'One claim request through Harpoon (pending → running for up to 500 events), sent to answered.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    harpoonErrors: new Counter({ name: 'router_harpoon_errors_total', help: 'Harpoon requests that failed (retried).', labelNames: ['op'], registers: [registry] }),
  };
}
