import { describe, expect, it } from 'vitest';
import { choosesHost, misaddressed, type DropletPlaceRow } from '../../harpoon/droplet-servers.ts';
import type { CreateEventInput } from '../../harpoon/types.ts';

const ev = (type: CreateEventInput['type'], droplet_id: number | null, server_id?: number): CreateEventInput => ({
  type,
  region: 'nyc1',
  droplet_id,
  ...(server_id === undefined ? {} : { server_id }),
});
const codes = (refused: Map<number, { code: string }>) => Object.fromEntries([...refused].map(([i, e]) => [i, e.code]));

describe('misaddressed: where the event data puts a droplet (the write path runs it against a real MariaDB in test/adversarial/harpoon-addressing.test.ts)', () => {
  it('the latest placed create decides, over any later event that named another server', () => {
    const rows: DropletPlaceRow[] = [
      { what: 'any', id: 30, droplet_id: 7, server_id: 9 },
      { what: 'placed', id: 10, droplet_id: 7, server_id: 3 },
      { what: 'create', id: 10, droplet_id: 7, server_id: 3 },
    ];
    const items = [ev('reboot', 7, 3), ev('reboot', 7, 9), ev('destroy', 7)].map((input, index) => ({ index, input }));
    expect(codes(misaddressed(items, rows))).toEqual({ 1: 'HARPOON_ERR_WRONG_SERVER', 2: 'HARPOON_ERR_WRONG_SERVER' });
  });

  it('an unplaced create, in the table or earlier in the batch, refuses every action', () => {
    const rows: DropletPlaceRow[] = [{ what: 'create', id: 11, droplet_id: 8, server_id: null }];
    const items = [ev('reboot', 8, 3), ev('create', 12), ev('power_off', 12, 3)].map((input, index) => ({ index, input }));
    const refused = misaddressed(items, rows);
    expect(codes(refused)).toEqual({ 0: 'HARPOON_ERR_WRONG_SERVER', 2: 'HARPOON_ERR_WRONG_SERVER' });
    expect(refused.get(2)!.message).toMatch(/create event in this batch/);
  });

  it('a droplet with no create follows its latest event with a server, or is pinned by the first event of the batch', () => {
    const rows: DropletPlaceRow[] = [{ what: 'any', id: 40, droplet_id: 5, server_id: 2 }];
    const items = [ev('reboot', 5, 2), ev('reboot', 5, 4), ev('reboot', 6, 4), ev('destroy', 6, 1), ev('pdu_reboot', null, 1)].map((input, index) => ({ index, input }));
    expect(codes(misaddressed(items, rows))).toEqual({ 1: 'HARPOON_ERR_WRONG_SERVER', 3: 'HARPOON_ERR_WRONG_SERVER' });
  });
});

describe('choosesHost: events whose hypervisor the caller picks (they need the place scope)', () => {
  it("a placed create, a host's event whatever droplet it names, and any other event for no droplet", () => {
    expect([ev('create', 1), ev('create', 1, 2), ev('reboot', 1, 2), ev('destroy', 1, 2), ev('pdu_reboot', null, 2), ev('node_unresponsive', 1, 2), ev('reboot', null, 2)].map(choosesHost)).toEqual([
      false,
      true,
      false,
      false,
      true,
      true,
      true,
    ]);
  });
});
