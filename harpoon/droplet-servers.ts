/**
 * Where a droplet is, according to the event data Harpoon owns, and the
 * rule that a non-create event for a droplet must be addressed there.
 *
 * An event is delivered to the hypervisor its server_id names, whose agent
 * executes it: an action naming another hypervisor than the droplet's makes
 * that host act on a droplet it does not hold (a destroy credits the
 * droplet's resources to the wrong host). Creating events needs only the
 * `create` scope, so the check is Harpoon's, not the caller's: Cloud (or
 * whoever holds its token) cannot choose the host. Harpoon reads `events`
 * alone, never Cloud's `droplets`: Cloud can write that table, so it could
 * not vouch for Cloud's own requests.
 */
import type { StranglerError } from '../lib/errors.ts';
import { harpoonError } from './errors.ts';
import type { CreateEventInput } from './types.ts';

/** One row of the lookup: `placed` the latest create with a server, `create` the latest create, `any` the latest event with a server. */
export interface DropletPlaceRow {
  what: 'placed' | 'create' | 'any';
  id: number;
  droplet_id: number;
  server_id: number | null;
}

/**
 * One statement (three index lookups by droplet_id, joined back on the
 * primary key) answering, for each droplet, its latest placed create, its
 * latest create and its latest event that names a server. A plain read in
 * the writing transaction, not a locking one: a placed event is never placed
 * elsewhere (applyChange), so a read that misses a placement committing at
 * the same time can only refuse, never let a wrong server through; a
 * locking read would take gap locks on the droplet_id index that
 * deadlock concurrent batches inserting actions for nearby droplets.
 */
export function dropletPlacesStatement(dropletIds: number[]): { sql: string; params: unknown[] } {
  const latest = (what: DropletPlaceRow['what'], where: string) =>
    `SELECT '${what}' AS what, e.id, e.droplet_id, e.server_id FROM events e ` +
    `JOIN (SELECT MAX(id) AS id FROM events WHERE droplet_id IN (?) AND ${where} GROUP BY droplet_id) m ON e.id = m.id`;
  return {
    sql: [
      latest('placed', "type = 'create' AND server_id IS NOT NULL"),
      latest('create', "type = 'create'"),
      latest('any', 'server_id IS NOT NULL'),
    ].join(' UNION ALL '),
    params: [dropletIds, dropletIds, dropletIds],
  };
}

/** Events that act on a whole hypervisor, every tenant of it, whatever droplet they name: the platform's, never a customer's action. */
export const HOST_EVENT_TYPES: readonly CreateEventInput['type'][] = ['pdu_reboot', 'ipmi_reboot', 'node_unresponsive'];

/**
 * An event addressed to a hypervisor by the caller's own choice: a host's event, or any non-create
 * event that names no droplet (nothing to check its server against). Creating one is a placement:
 * it needs the `place` scope, as a create with a server_id does.
 *
 * @example
 *   if (items.some(choosesHost)) auth.require(caller, 'place', 'create an event for a hypervisor');
 */
export function choosesHost(input: CreateEventInput): boolean {
  if (input.type === 'create') return input.server_id !== undefined && input.server_id !== null;
  return HOST_EVENT_TYPES.includes(input.type) || input.droplet_id === undefined || input.droplet_id === null;
}

/** The creates of a batch this rule checks: every non-create event that names a droplet. */
export function isAddressedToDroplet(input: CreateEventInput): input is CreateEventInput & { droplet_id: number } {
  return input.type !== 'create' && input.droplet_id !== undefined && input.droplet_id !== null;
}

/** What the event data says about one droplet. */
interface Known {
  /** The hypervisor, and the event that says so. */
  server?: { id: number; by: number; create: boolean };
  /** A create for it exists (maybe still unplaced). */
  createId?: number;
}

/**
 * The refusals among `items` (in batch order), keyed by their index. The
 * droplet's hypervisor is the server_id of its latest placed create event.
 * A droplet whose create is not placed yet is on no hypervisor: any action
 * on it is refused (Cloud itself answers CLOUD_ERR_DROPLET_NOT_READY until
 * it has one). A droplet with no create event at all predates event data
 * (seeded fleets): the latest event that named a server for it stands in,
 * and with none the first event pins it (later ones in the same batch
 * included). Items without a droplet_id are not checked.
 *
 * @example
 *   const [rows] = await conn.query(dropletPlacesStatement([7]).sql, dropletPlacesStatement([7]).params);
 *   const refused = misaddressed([{ index: 0, input: { type: 'reboot', region: 'nyc1', droplet_id: 7, server_id: 3 } }], rows);
 */
export function misaddressed(items: Array<{ index: number; input: CreateEventInput }>, rows: DropletPlaceRow[]): Map<number, StranglerError> {
  const known = new Map<number, Known>();
  const at = (droplet: number): Known => {
    let k = known.get(droplet);
    if (!k) known.set(droplet, (k = {}));
    return k;
  };
  for (const r of rows) {
    const k = at(Number(r.droplet_id));
    if (r.what === 'create') k.createId = Number(r.id);
    else if (r.what === 'any') k.server ??= { id: r.server_id!, by: Number(r.id), create: false };
  }
  // The placed create outranks whatever else named a server.
  for (const r of rows) if (r.what === 'placed') at(Number(r.droplet_id)).server = { id: r.server_id!, by: Number(r.id), create: true };

  const refused = new Map<number, StranglerError>();
  for (const { index, input } of items) {
    if (input.droplet_id === undefined || input.droplet_id === null) continue;
    const droplet = input.droplet_id;
    const k = at(droplet);
    if (input.type === 'create') {
      // A create in the same batch: the droplet has no hypervisor until the scheduler places it.
      k.createId ??= 0;
      continue;
    }
    const named = input.server_id ?? null;
    const fix = 'nothing was written';
    if (k.server?.create) {
      if (named !== k.server.id) {
        refused.set(
          index,
          harpoonError(
            'HARPOON_ERR_WRONG_SERVER',
            `a ${input.type} event for droplet ${droplet} must be addressed to hypervisor ${k.server.id}, where its create event ${k.server.by} placed it, not to ${named === null ? 'no hypervisor' : `hypervisor ${named}`}; ${fix}`,
          ),
        );
      }
      continue;
    }
    if (k.createId !== undefined) {
      refused.set(
        index,
        harpoonError(
          'HARPOON_ERR_WRONG_SERVER',
          `droplet ${droplet} is still being created (${k.createId > 0 ? `its create event ${k.createId} is` : 'its create event in this batch is'} not placed on a hypervisor yet), so no hypervisor holds it; send the ${input.type} once the droplet is active; ${fix}`,
        ),
      );
      continue;
    }
    if (named === null) {
      refused.set(index, harpoonError('HARPOON_ERR_WRONG_SERVER', `a ${input.type} event for droplet ${droplet} needs the server_id of the hypervisor the droplet is on: without one no agent would ever run it; ${fix}`));
      continue;
    }
    if (k.server && named !== k.server.id) {
      refused.set(
        index,
        harpoonError(
          'HARPOON_ERR_WRONG_SERVER',
          `a ${input.type} event for droplet ${droplet} must be addressed to hypervisor ${k.server.id}, where ${k.server.by > 0 ? `its event ${k.server.by}` : 'an earlier event of this request'} addressed it, not to hypervisor ${named}; ${fix}`,
        ),
      );
      continue;
    }
    k.server ??= { id: named, by: 0, create: false };
  }
  return refused;
}
