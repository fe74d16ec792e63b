import type { Knex } from 'knex';
import { parseFeatureRow, routingOfState } from '../lib/cutover/feature-row.ts';
import { EVENT_WRITES, SCHEDULING } from '../domain/features.ts';
import type { ObservableFeatureStateSource, Routing } from '../lib/cutover/types.ts';

/** The cutover feature that moves event writes (and so V2's queue and placements) to Harpoon. */

/**
 * Where V2 reads the cutover state from when it is not MySQL: the HTTP
 * source of the cutover admin (lib/cutover/http-state-source.ts), or any
 * reader of the same shape (proxy/cutover/state-store.ts CutoverStateReader).
 * The replica starts it in start() and closes it in close().
 */
export interface SchedulerStateSource extends ObservableFeatureStateSource {
  start(): Promise<unknown>;
  close(): Promise<unknown>;
}

/** The two features V2 follows, as one reading. */
export interface FollowedState {
  scheduling: Routing;
  eventWrites: Routing;
}

const FENCE_SQL = `SELECT feature, mode, percent, regions, version FROM cutover_features WHERE feature IN (?, ?) LOCK IN SHARE MODE`;
const READ_SQL = `SELECT feature, mode, percent, regions, version FROM cutover_features WHERE feature IN (?, ?)`;

function fromRows(rows: Array<Record<string, unknown>>): FollowedState {
  const by = new Map(rows.map((r) => [String(r.feature), r]));
  return { scheduling: parseFeatureRow(by.get(SCHEDULING)).routing, eventWrites: parseFeatureRow(by.get(EVENT_WRITES)).routing };
}

/**
 * Both followed rows in one primary-key statement, under a shared lock
 * when `lock` (inside a commit's transaction: the fence of docs/harpoon-era.md
 * and of lib/cutover/scheduling.ts — the controller's UPDATE of either row
 * waits for the commit, so a direct placement lands strictly before a
 * switch or sees it).
 */
export async function readFollowed(db: Knex | Knex.Transaction, options: { lock?: boolean } = {}): Promise<FollowedState> {
  const [rows] = (await db.raw(options.lock ? FENCE_SQL : READ_SQL, [SCHEDULING, EVENT_WRITES])) as [Array<Record<string, unknown>>];
  return fromRows(rows);
}

/**
 * The state the replica's loop decides on: from `source` when given (no
 * MySQL statement at all), else from MySQL at most every `intervalMs`.
 *
 * @example
 *   const follow = createCutoverFollower(db, { intervalMs: 500 });
 *   const { scheduling, eventWrites } = await follow.read();
 */
export function createCutoverFollower(db: Knex, options: { intervalMs: number; source?: SchedulerStateSource }) {
  let cached: { state: FollowedState; at: number } | undefined;
  // Until the source has loaded once (its start() resolved), MySQL is the fallback.
  let sourceUp = false;
  return {
    /** The source has loaded: read from it from now on. */
    sourceStarted(): void {
      sourceUp = true;
    },
    async read(): Promise<FollowedState> {
      if (options.source && sourceUp) {
        const state = { scheduling: routingOfState(options.source.get(SCHEDULING)), eventWrites: routingOfState(options.source.get(EVENT_WRITES)) };
        cached = { state, at: Date.now() };
        return state;
      }
      if (!cached || Date.now() - cached.at >= options.intervalMs) cached = { state: await readFollowed(db), at: Date.now() };
      return cached.state;
    },
    /** A reading taken under the fence lock is the freshest there is: keep it. */
    remember(state: FollowedState): void {
      if (!(options.source && sourceUp)) cached = { state, at: Date.now() };
    },
    last: (): FollowedState | undefined => cached?.state,
  };
}

export type CutoverFollower = ReturnType<typeof createCutoverFollower>;
