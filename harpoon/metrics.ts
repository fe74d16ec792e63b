import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Harpoon's own metrics (the HTTP shell adds http_requests_total and http_request_duration_seconds). */
export function createHarpoonMetrics(registry: Registry, sources: { queueDepth(): number; subscribers(): number; head(): number; readsInflight(): number }) {
  return {
    batchRows: new Histogram({
      name: 'harpoon_batch_rows',
      help: 'Items (creates and status changes) written per group-commit transaction.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    batchRequests: new Histogram({
      name: 'harpoon_batch_requests',
      help: 'HTTP requests whose items one group-commit transaction carried.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'harpoon_batch_duration_seconds',
      help: 'Time to write and commit one batch.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'harpoon_write_queue_depth',
      help: 'Items admitted to the write queue and not yet committed.',
      registers: [registry],
      collect() {
        this.set(sources.queueDepth());
      },
    }),
    readsInflight: new Gauge({
      name: 'harpoon_reads_inflight',
      help: 'Distinct reads in flight (each one query; identical reads wait on it).',
      registers: [registry],
      collect() {
        this.set(sources.readsInflight());
      },
    }),
    backpressure: new Counter({
      name: 'harpoon_backpressure_total',
      help: 'Requests refused with 429 HARPOON_ERR_BACKPRESSURE, by queue (write, read).',
      labelNames: ['queue'],
      registers: [registry],
    }),
    reads: new Counter({
      name: 'harpoon_reads_total',
      help: 'Reads, by outcome: query (sent to MySQL) or consolidated (served by an identical read in flight).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    statements: new Counter({
      name: 'harpoon_db_statements_total',
      help: 'Statements Harpoon sent to MySQL, by purpose.',
      labelNames: ['purpose'],
      registers: [registry],
    }),
    written: new Counter({
      name: 'harpoon_changes_committed_total',
      help: 'Log entries (creates, status changes, placements) this replica committed.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    subscribers: new Gauge({
      name: 'harpoon_stream_subscribers',
      help: 'Open /v1/stream connections on this replica.',
      registers: [registry],
      collect() {
        this.set(sources.subscribers());
      },
    }),
    head: new Gauge({
      name: 'harpoon_log_head',
      help: 'The newest event_log id this replica has delivered to its subscribers.',
      registers: [registry],
      collect() {
        this.set(sources.head());
      },
    }),
    deliveryLag: new Histogram({
      name: 'harpoon_delivery_lag_seconds',
      help: 'Time from a change being committed to its frame being written to every live subscriber it matches on this replica.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    framesWritten: new Counter({ name: 'harpoon_stream_frames_total', help: 'Change frames written to subscribers.', registers: [registry] }),
    slowCutoffs: new Counter({
      name: 'harpoon_stream_slow_cutoffs_total',
      help: 'Subscribers cut off because they stopped reading (they resume from their cursor).',
      registers: [registry],
    }),
    tooOld: new Counter({
      name: 'harpoon_stream_too_old_total',
      help: 'Streams refused (410) or ended (event: too-old) because their cursor is older than what event_log keeps (HARPOON_ERR_CURSOR_TOO_OLD).',
      registers: [registry],
    }),
    peerSlowCutoffs: new Counter({
      name: 'harpoon_peer_slow_cutoffs_total',
      help: 'Peer replicas cut off because they stopped reading our change push (they reconnect and read what they missed from event_log).',
      registers: [registry],
    }),
    peerMessages: new Counter({
      name: 'harpoon_peer_messages_total',
      help: 'Committed-change pushes received from peer replicas.',
      registers: [registry],
    }),
    peerConnected: new Gauge({ name: 'harpoon_peers_connected', help: 'Peer replicas whose change push this replica is receiving.', registers: [registry] }),
  };
}

export type HarpoonMetrics = ReturnType<typeof createHarpoonMetrics>;
