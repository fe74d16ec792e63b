import { goesNew } from '../../lib/cutover/decide.ts';
import { LEGACY_ROUTING, type Routing, type RoutingMode } from '../../lib/cutover/types.ts';

/** The cutover feature that moves event delivery from the god query to the Event Router. */
export const EVENT_DELIVERY = 'event-delivery';

/** Where a hypervisor's events come from: the names recorded in event_executions.source. */
export type DeliverySource = 'god-query' | 'router';

export interface EventDeliveryState {
  routing: Routing;
  /** The row's version (0 when there is no row); informational, decisions use `routing`. */
  version: number;
  /** A stable string of the routing, to tell cheaply whether a decision may have changed. */
  key: string;
}

/** Anything with mysql2's promise `query`: a Connection, a PoolConnection or a Pool. */
export interface Queryable {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
}

const MODES: readonly RoutingMode[] = ['legacy', 'shadow', 'canary', 'full'];

export const EVENT_DELIVERY_SQL = 'SELECT mode, percent, regions, version FROM cutover_features WHERE feature = ?';

/**
 * Turns a cutover_features row into a routing, failing safe: an absent
 * row, an unknown mode or unreadable regions all mean "stay where the
 * data is known to be served" — legacy for unknown modes, no region for
 * unreadable region lists.
 */
export function parseEventDeliveryRow(row: { mode?: unknown; percent?: unknown; regions?: unknown; version?: unknown } | undefined): EventDeliveryState {
  if (!row) return { routing: LEGACY_ROUTING, version: 0, key: 'legacy' };
  const mode = MODES.includes(row.mode as RoutingMode) ? (row.mode as RoutingMode) : 'legacy';
  const pct = Number(row.percent);
  const percent = Number.isFinite(pct) ? Math.min(100, Math.max(0, pct)) : 0;
  let regions: string[] | null = null;
  if (row.regions !== null && row.regions !== undefined && row.regions !== '') {
    try {
      const parsed: unknown = JSON.parse(String(row.regions));
      regions = Array.isArray(parsed) ? parsed.filter((r): r is string => typeof r === 'string') : [];
    } catch {
      regions = [];
    }
  }
  const routing: Routing = { mode, percent, regions };
  return { routing, version: Number(row.version) || 0, key: JSON.stringify(routing) };
}

/** Reads the `event-delivery` state: one primary-key lookup. */
export async function readEventDelivery(db: Queryable): Promise<EventDeliveryState> {
  const [rows] = await db.query(EVENT_DELIVERY_SQL, [EVENT_DELIVERY]);
  return parseEventDeliveryRow((rows as Array<Record<string, unknown>>)[0]);
}

/** Whether this hypervisor takes its events from its region's router: the sticky decision the proxy shares. */
export function routedToRouter(state: EventDeliveryState, serverId: number, region: string): boolean {
  return goesNew(EVENT_DELIVERY, state.routing, { key: String(serverId), region });
}
