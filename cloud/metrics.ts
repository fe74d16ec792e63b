import { Counter, Gauge, type Registry } from 'prom-client';
import type { OutboxHealth } from './outbox.ts';
import type { DropletEventType } from './queue.ts';

export interface CloudMetrics {
  dropletsCreated: Counter;
  eventsWritten: Counter<'type'>;
  outboxWritten: Counter<'type'>;
  outboxRelayed: Counter;
  outboxRelayFailures: Counter;
  outboxRejected: Counter;
  outboxParked: Counter<'reason'>;
  outboxTaken: Counter;
  answeredBeforeRelay: Counter<'route'>;
  /** Set by createCloud once the relay exists: rows it holds that Harpoon has not confirmed. */
  outboxPending: { source?: () => number };
  /** Set by createCloud once the relay exists: the whole table's parked and pending rows, read at scrape time. */
  outboxHealth: { source?: () => Promise<OutboxHealth> };
}

const WRITTEN_TYPES: Array<'create' | DropletEventType> = ['create', 'destroy', 'reboot', 'power_off', 'power_on'];

/**
 * Cloud's own counters, in the registry it was given. They count committed
 * writes only, so they can be checked against the events table row for row
 * (direct writes) and the outbox (writes through Harpoon).
 */
export function createCloudMetrics(registry: Registry): CloudMetrics {
  const dropletsCreated = new Counter({
    name: 'cloud_droplets_created_total',
    help: 'Droplets the Cloud API created (committed together with their create event or its outbox row).',
    registers: [registry],
  });
  const eventsWritten = new Counter({
    name: 'cloud_events_written_total',
    help: 'Rows the Cloud API inserted into the events table directly (event-writes legacy), by event type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const outboxWritten = new Counter({
    name: 'cloud_outbox_rows_total',
    help: 'Events the Cloud API committed to event_outbox for Harpoon (event-writes canary/full), by event type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const outboxRelayed = new Counter({ name: 'cloud_outbox_relayed_total', help: 'Outbox rows Harpoon confirmed (created or found by key) and Cloud deleted.', registers: [registry] });
  const outboxRelayFailures = new Counter({
    name: 'cloud_outbox_relay_failures_total',
    help: 'Relay attempts that failed (Harpoon unreachable, 5xx, MySQL); the rows stay and are retried with backoff.',
    registers: [registry],
  });
  const outboxRejected = new Counter({
    name: 'cloud_outbox_rejected_total',
    help: 'Outbox rows Harpoon refused with a 4xx or an item error; they are parked in event_outbox for an operator (CLOUD_ERR_OUTBOX_PARKED).',
    registers: [registry],
  });
  const outboxParked = new Counter({
    name: 'cloud_outbox_parked_total',
    help: 'Outbox rows this Cloud parked (CLOUD_ERR_OUTBOX_PARKED), by reason: refused (Harpoon said no) or attempts (maxAttempts transient failures).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const outboxTaken = new Counter({
    name: 'cloud_outbox_taken_total',
    help: "Outbox rows this Cloud took over after their lease expired (another Cloud died or stopped before relaying them).",
    registers: [registry],
  });
  const answeredBeforeRelay = new Counter({
    name: 'cloud_answered_before_relay_total',
    help: 'Writes answered before Harpoon confirmed their event (relayWaitMs passed): the event is committed in the outbox and relayed later.',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const outboxPending: CloudMetrics['outboxPending'] = {};
  new Gauge({
    name: 'cloud_outbox_pending',
    help: 'Outbox rows this Cloud holds that Harpoon has not confirmed yet.',
    registers: [registry],
    collect() {
      this.set(outboxPending.source?.() ?? 0);
    },
  });
  const outboxHealth: CloudMetrics['outboxHealth'] = {};
  let health: OutboxHealth | undefined;
  let reading: Promise<OutboxHealth | undefined> | undefined;
  // Both gauges of one scrape share one query.
  const readHealth = (): Promise<OutboxHealth | undefined> =>
    (reading ??= (async () => {
      try {
        health = (await outboxHealth.source?.()) ?? health;
      } catch {
        // A scrape must not fail because MySQL blinked: the last reading stands.
      }
      reading = undefined;
      return health;
    })());
  new Gauge({
    name: 'cloud_outbox_parked_rows',
    help: 'Rows parked in event_outbox (every Cloud\'s): events customers were answered for that will not reach Harpoon until an operator acts. Alert when above 0.',
    registers: [registry],
    async collect() {
      this.set((await readHealth())?.parked ?? 0);
    },
  });
  new Gauge({
    name: 'cloud_outbox_oldest_pending_seconds',
    help: 'Age of the oldest outbox row not yet relayed (every Cloud\'s, parked rows aside): a Harpoon outage or a stuck relay shows here before anything is parked.',
    registers: [registry],
    async collect() {
      this.set((await readHealth())?.oldest_pending_seconds ?? 0);
    },
  });
  outboxParked.inc({ reason: 'refused' }, 0);
  outboxParked.inc({ reason: 'attempts' }, 0);
  // Zero series from the start, so rate() and dashboards see every type before its first event.
  for (const type of WRITTEN_TYPES) {
    eventsWritten.inc({ type }, 0);
    outboxWritten.inc({ type }, 0);
  }
  return { dropletsCreated, eventsWritten, outboxWritten, outboxRelayed, outboxRelayFailures, outboxRejected, outboxParked, outboxTaken, answeredBeforeRelay, outboxPending, outboxHealth };
}
