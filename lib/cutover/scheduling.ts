import type { Knex } from 'knex';
import { goesNew } from './decide.ts';
import { FEATURE_ROW_SQL, parseFeatureRow, type FeatureRowState } from './feature-row.ts';
import { SCHEDULING } from '../../domain/features.ts';

/** The cutover feature that moves placement from Scheduler V1 to Scheduler V2. */

/**
 * Whether a region's placements belong to Scheduler V2. The unit of the
 * hand-over is the region (V1 and V2 must never place in one region at
 * once: V1 places on `memfree` without V2's ledger check), so the region
 * slug is also the sticky key: a canary percent is a sticky share of the
 * regions it covers. Shared by V1 and V2 so both sides of a switch agree.
 *
 * @example
 *   schedulingMoved({ mode: 'canary', percent: 100, regions: ['nyc1'] }, 'nyc1') // true
 */
export function schedulingMoved(routing: FeatureRowState['routing'], region: string): boolean {
  return goesNew(SCHEDULING, routing, { key: region, region });
}

/**
 * Reads the `scheduling` row. With `lock` (inside a transaction) it takes a
 * shared lock on the row until that transaction ends: the placement that
 * commits in it is then ordered against every state change, since the
 * cutover controller's UPDATE of the row waits for it. Both schedulers
 * commit each placement this way (the fence), so after a switch commits,
 * the side that lost a region can place nothing more in it, and the side
 * that gained it sees every placement the other one made.
 */
export async function readScheduling(db: Knex | Knex.Transaction, options: { lock?: boolean } = {}): Promise<FeatureRowState> {
  const [rows] = (await db.raw(`${FEATURE_ROW_SQL}${options.lock ? ' LOCK IN SHARE MODE' : ''}`, [SCHEDULING])) as [Array<Record<string, unknown>>];
  return parseFeatureRow(rows[0]);
}
