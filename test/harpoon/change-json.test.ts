import { describe, expect, it } from 'vitest';
import { changeJson, eventJson } from '../../harpoon/change-json.ts';
import type { Change, HarpoonEvent } from '../../harpoon/types.ts';

const event = (over: Partial<HarpoonEvent> = {}): HarpoonEvent => ({
  id: 7,
  type: 'create',
  status: 'pending',
  region: 'nyc1',
  region_id: 1,
  server_id: null,
  droplet_id: 12,
  customer_id: null,
  args: { size: 's-1vcpu-1gb', note: 'quote " and \\ and \u2028' },
  message: null,
  key: 'k-1',
  created_at: '2026-12-07T05:00:00.123Z',
  available_at: null,
  started_at: null,
  finished_at: null,
  ...over,
});

describe('change-json (harpoon/change-json.ts)', () => {
  it('gives exactly JSON.stringify of a change and of its event, for the shape Harpoon builds and any other', () => {
    const built: Change = { cursor: 41, kind: 'created', event: event(), committed_at: '2026-12-07T05:00:00.123Z' };
    expect(changeJson(built)).toBe(JSON.stringify(built));
    expect(eventJson(built.event)).toBe(JSON.stringify(built.event));
    // A change parsed from a peer's push keeps the order; one in another order is stringified whole.
    const parsed = JSON.parse(JSON.stringify(built)) as Change;
    expect(changeJson(parsed)).toBe(JSON.stringify(parsed));
    const reordered = { kind: 'status', cursor: 42, committed_at: '2026-12-07T05:00:01.000Z', event: event({ status: 'running' }) } as Change;
    expect(changeJson(reordered)).toBe(JSON.stringify(reordered));
    // The text is made once per object: the same string comes back.
    expect(changeJson(built)).toBe(changeJson(built));
  });
});
