import { Counter, type Registry } from 'prom-client';
import type { DropletEventType } from './queue.ts';

export interface CloudMetrics {
  dropletsCreated: Counter;
  eventsWritten: Counter<'type'>;
}

const WRITTEN_TYPES: Array<'create' | DropletEventType> = ['create', 'destroy', 'reboot', 'power_off', 'power_on'];

/**
 * Cloud's own counters, in the registry it was given. They count committed
 * writes only, so they can be checked against the events table row for row.
 */
export function createCloudMetrics(registry: Registry): CloudMetrics {
  const dropletsCreated = new Counter({
    name: 'cloud_droplets_created_total',
    help: 'Droplets the Cloud API created (committed together with their create event).',
    registers: [registry],
  });
  const eventsWritten = new Counter({
    name: 'cloud_events_written_total',
    help: 'Rows the Cloud API inserted into the events table, by event type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  // Zero series from the start, so rate() and dashboards see every type before its first event.
  for (const type of WRITTEN_TYPES) eventsWritten.inc({ type }, 0);
  return { dropletsCreated, eventsWritten };
}
