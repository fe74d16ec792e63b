import { EVENT_DELIVERY } from '../../domain/features.ts';
import { goesNew } from './decide.ts';
import { FEATURE_ROW_SQL, parseFeatureRow, type FeatureRowState } from './feature-row.ts';

export { EVENT_DELIVERY };

/** Where a hypervisor's events come from: the names recorded in event_executions.source. */
export type DeliverySource = 'god-query' | 'router';

/** The `event-delivery` row as an agent or router reads it. */
export type EventDeliveryState = FeatureRowState;

/** Anything with mysql2's promise `query`: a Connection, a PoolConnection or a Pool. */
export interface Queryable {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
}

export const EVENT_DELIVERY_SQL = FEATURE_ROW_SQL;

/** See parseFeatureRow (lib/cutover/feature-row.ts): the same fail-safe reading. */
export const parseEventDeliveryRow = parseFeatureRow;

/** Reads the `event-delivery` state: one primary-key lookup. */
export async function readEventDelivery(db: Queryable): Promise<EventDeliveryState> {
  const [rows] = await db.query(EVENT_DELIVERY_SQL, [EVENT_DELIVERY]);
  return parseEventDeliveryRow((rows as Array<Record<string, unknown>>)[0]);
}

/** Whether this hypervisor takes its events from its region's router: the sticky decision the proxy shares. */
export function routedToRouter(state: EventDeliveryState, serverId: number, region: string): boolean {
  return goesNew(EVENT_DELIVERY, state.routing, { key: String(serverId), region });
}
