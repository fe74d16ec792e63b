import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../harpoon/catalog.ts';
import { LOG_COLUMN_FIELDS, LOG_PAYLOAD_FIELDS, logPayload, toEvent, type EventRow } from '../../harpoon/store.ts';

const catalog = { regionSlug: (id: number) => `region-${id}` } as unknown as Catalog;

const full: EventRow = {
  id: 9,
  type: 'create',
  status: 'running',
  region_id: 2,
  server_id: 31,
  droplet_id: 44,
  customer_id: 7,
  args: JSON.stringify({ size: 's-1vcpu-1gb', note: 'a "quoted" \\ value' }),
  message: 'started',
  harpoon_key: 'k-9',
  created_at: '2026-12-07 05:00:00.123',
  available_at: '2026-12-07 05:00:01.000',
  started_at: '2026-12-07 05:00:02.500',
  finished_at: '2026-12-07 05:00:03.000',
};

/** What a payload is by definition: the event without its column fields and without nulls. */
function expected(event: object): string {
  const columns = new Set<string>(LOG_COLUMN_FIELDS);
  return JSON.stringify(Object.fromEntries(Object.entries(event).filter(([k, v]) => v !== null && !columns.has(k))));
}

describe('event_log payloads (harpoon/store.ts)', () => {
  it('names every event field once: a column of the log row or a payload field, in the order events are built', () => {
    const keys = Object.keys(toEvent(full, catalog));
    expect(keys.filter((k) => !(LOG_COLUMN_FIELDS as readonly string[]).includes(k))).toEqual([...LOG_PAYLOAD_FIELDS]);
  });

  it('holds exactly the non-column, non-null fields, for a full event and a sparse one', () => {
    const event = toEvent(full, catalog);
    expect(logPayload(event)).toBe(expected(event));
    const sparse = toEvent({ ...full, server_id: null, droplet_id: null, customer_id: null, args: null, message: null, harpoon_key: null, available_at: null, started_at: null, finished_at: null }, catalog);
    expect(logPayload(sparse)).toBe(expected(sparse));
    expect(JSON.parse(logPayload(sparse))).toEqual({ region: 'region-2', created_at: '2026-12-07T05:00:00.123Z' });
  });
});
