import { describe, expect, it } from 'vitest';
import { rewindTo, rewindUserDroplets, type HostChange } from '../../scheduler/rewind.ts';

/** The rewind alone (pure): which changes it undoes for a moment, host by host. */
describe('rewindTo', () => {
  const T = 1_800_000_000_000;
  const change = (c: Partial<HostChange> & Pick<HostChange, 'id' | 'server_id'>): HostChange => ({
    type: 'create',
    placed_ms: T,
    finished_ms: null,
    customer_id: 1,
    droplet_status: 'active',
    memory: 2048,
    disk: 40,
    ...c,
  });

  it('leaves out the decided create and those placed after it, executed or not; within one millisecond by id', () => {
    const changes = [
      change({ id: 10, server_id: 1, placed_ms: T, finished_ms: T + 500 }), // the decided one, executed and reported
      change({ id: 11, server_id: 2, placed_ms: T, droplet_status: 'new' }), // same ms, later id: placed after
      change({ id: 9, server_id: 3, placed_ms: T }), // same ms, earlier id: V1 had placed it already
      change({ id: 8, server_id: 4, placed_ms: T + 5 }), // lower id placed later (it had waited)
    ];
    const of = rewindTo(changes, { event_id: 10, at_ms: T });
    expect(of(1)).toMatchObject({ skip: new Set([10]), ledger_memory: 2048, reported: [{ at_ms: T + 500, memory: 2048, disk: 40, vmcount: -1 }] });
    expect(of(2)).toMatchObject({ skip: new Set([11]), ledger_memory: 2048, reported: [] });
    expect(of(3)).toMatchObject({ skip: new Set(), ledger_memory: 0, busy: [] });
    expect(of(4).skip).toEqual(new Set([8]));
    // Hosts no change touched: only busy events from the decided id on are left out, unless known placed before.
    expect(of(99)).toMatchObject({ after_id: 10, skip: new Set(), ledger_memory: 0 });
    expect(of(99).placed_before.has(9)).toBe(true);
  });

  it('makes busy again what was busy then, and takes back what a destroy freed since', () => {
    const changes = [
      change({ id: 5, server_id: 1, placed_ms: T - 1000, finished_ms: T + 200 }), // busy creating at T, executed since
      change({ id: 6, server_id: 1, type: 'pdu_reboot', placed_ms: T - 9000, finished_ms: T + 300, droplet_status: null, memory: 0, disk: 0 }),
      change({ id: 7, server_id: 2, type: 'destroy', placed_ms: T - 50, finished_ms: T + 100, droplet_status: 'archived' }),
      change({ id: 4, server_id: 3, placed_ms: T - 2000, finished_ms: T - 1000 }), // over before T: nothing to undo
    ];
    const of = rewindTo(changes, { event_id: 20, at_ms: T });
    expect(of(1).busy.map((b) => [b.id, b.type])).toEqual([
      [5, 'create'],
      [6, 'pdu_reboot'],
    ]);
    expect(of(1).reported).toEqual([{ at_ms: T + 200, memory: 2048, disk: 40, vmcount: -1 }]);
    expect(of(2)).toMatchObject({ ledger_memory: -2048, ledger_disk: -40, reported: [{ at_ms: T + 100, memory: -2048, disk: -40, vmcount: 1 }] });
    expect(of(3)).toMatchObject({ busy: [], ledger_memory: 0, reported: [] });
  });

  it('with an earlier read moment, undoes the finishes since the read but the placements only since the decision', () => {
    const changes = [
      change({ id: 5, server_id: 1, placed_ms: T - 3000, finished_ms: T - 500 }), // finished between V1's read and its placement
      change({ id: 6, server_id: 2, placed_ms: T - 800, finished_ms: T - 300 }), // placed by V1 earlier in the pass, executed since
      change({ id: 7, server_id: 3, type: 'destroy', placed_ms: T - 2000, finished_ms: T - 200, droplet_status: 'archived' }),
      change({ id: 10, server_id: 4, placed_ms: T, finished_ms: T + 400 }), // the decided one
      change({ id: 3, server_id: 5, placed_ms: T - 4000, finished_ms: T - 1500 }), // executed before the read: in V1's row
      change({ id: 2, server_id: 5, type: 'destroy', placed_ms: T - 4000, finished_ms: T - 1200, droplet_status: 'archived' }),
    ];
    const read = rewindTo(changes, { event_id: 10, at_ms: T, read_ms: T - 1000 });
    expect(read(1).busy.map((b) => b.id)).toEqual([5]);
    expect(read(2)).toMatchObject({ skip: new Set(), busy: [{ id: 6, type: 'create' }] });
    expect(read(3)).toMatchObject({ ledger_memory: -2048, ledger_count: 1 });
    expect(read(4)).toMatchObject({ skip: new Set([10]), ledger_memory: 2048 });
    // What finished before the read is applied to a report older than it (the row has it, the metrics not yet).
    expect(read(5)).toMatchObject({ busy: [], ledger_memory: 0, reported: [] });
    expect(read(5).unreported).toEqual([
      { at_ms: T - 1500, memory: -2048, disk: -40, vmcount: 1 },
      { at_ms: T - 1200, memory: 2048, disk: 40, vmcount: -1 },
    ]);
    // As of the placement itself, those finishes stand.
    const placed = rewindTo(changes, { event_id: 10, at_ms: T });
    expect([read, placed].map((of) => of(1).busy.length + of(2).busy.length + of(3).ledger_count)).toEqual([3, 0]);
  });

  it("takes the creates placed since out of the customer's droplet counts", () => {
    const changes = [change({ id: 10, server_id: 1 }), change({ id: 11, server_id: 2 }), change({ id: 12, server_id: 2, customer_id: 2 })];
    const now = new Map([
      [1, 1],
      [2, 3],
    ]);
    const then = rewindUserDroplets(now, 1, changes, { event_id: 10, at_ms: T });
    expect([...then!]).toEqual([
      [1, 0],
      [2, 2],
    ]);
    expect(now.get(1)).toBe(1);
  });
});
