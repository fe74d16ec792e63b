/**
 * The router's own statements, none on `events`: its region, the hypervisors'
 * regions (token checks), and the cutover rows it follows when no state
 * source is given. The polling statements of the MySQL source are in
 * legacy/router/queries.ts.
 */
import type { Pool, RowDataPacket } from 'mysql2/promise';

/** mysql2 expands an array bound to `IN (?)`; chunks keep each statement's list bounded. */
export const IN_CHUNK = 1000;

export function chunks<T>(items: T[], size = IN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function fetchRegionId(db: Pool, slug: string): Promise<number | undefined> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT id FROM regions WHERE slug = ?', [slug]);
  return rows[0] ? Number(rows[0].id) : undefined;
}

/** Every hypervisor's region slug: 15,000 short rows, read at start and on an unknown id. */
export async function fetchServerRegions(db: Pool): Promise<Map<number, string>> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT s.id, r.slug FROM servers s JOIN regions r ON r.id = s.region_id');
  return new Map(rows.map((r) => [Number(r.id), String(r.slug)]));
}

/** The cutover rows the router follows (event-delivery, event-writes), in one primary-key statement. */
export async function fetchFeatureRows(db: Pool, features: readonly string[]): Promise<Map<string, { mode: unknown; percent: unknown; regions: unknown; version: unknown }>> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT feature, mode, percent, regions, version FROM cutover_features WHERE feature IN (?)', [features]);
  return new Map(rows.map((r) => [String(r.feature), { mode: r.mode, percent: r.percent, regions: r.regions, version: r.version }]));
}
