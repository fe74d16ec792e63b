import type { Knex } from 'knex';
import {
  FEATURES,
  type FeatureState,
  type FeatureStateChange,
  type Routing,
  type RoutingMode,
} from '../../lib/cutover/types.ts';
import type { DbConfig } from '../../lib/db/config.ts';
import { createPolledStateSource, legacyFeatureState, type PolledStateSource } from '../../lib/cutover/polled-source.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import { cutoverError } from './errors.ts';
import type { Baseline, GateReading } from './gates.ts';

/**
 * The cutover state in MySQL: one `cutover_features` row per feature (the
 * routing every proxy replica and agent applies) and an append-only
 * `cutover_history`. Every change bumps the row's `version` under
 * `WHERE version = <the version the caller read>` and writes its history
 * row in the same transaction, so two concurrent changes cannot both win
 * and no change goes unaudited.
 */

export type HistoryAction =
  | 'advance'
  | 'advance-refused'
  | 'advance-blocked'
  | 'rollback'
  | 'auto-rollback'
  | 'pause'
  | 'resume'
  | 'alert'
  | 'promote'
  | 'run-started'
  | 'run-waiting'
  | 'run-finished'
  | 'run-stopped'
  | 'drift';

/** A feature's row: the state readers apply, plus what the controller needs to judge the soak. */
export interface FeatureRecord extends FeatureState {
  feature: string;
  /** ISO time the current step began (its soak window starts here). */
  stepStartedAt: string;
  baseline: Baseline | null;
}

export interface HistoryEntry {
  id: number;
  feature: string;
  action: HistoryAction | string;
  from_step: number;
  to_step: number;
  actor: string;
  reason: string | null;
  /** The gate readings the decision was made on (advance, advance-refused, auto-rollback), else null. */
  readings: GateReading[] | null;
  at: string;
}

export interface HistoryInput {
  action: HistoryAction;
  actor: string;
  reason?: string | null;
  readings?: GateReading[] | null;
  fromStep: number;
  toStep: number;
}

export interface StateChange {
  feature: string;
  /** The version the caller decided on; the change fails with CUTOVER_ERR_CONFLICT if the row moved on. */
  expectedVersion: number;
  set: {
    step?: { step: number; stepName: string; routing: Routing };
    paused?: boolean;
    /** Start the soak clock again (a new step). */
    restartSoak?: boolean;
    /** undefined leaves it; null clears it. */
    baseline?: Baseline | null;
  };
  history: HistoryInput;
}

export interface CutoverStateStore {
  /** Inserts a legacy row for every feature that has none (idempotent, safe from concurrent replicas). */
  ensureRows(): Promise<void>;
  /** Every feature's record, with the database's clock (soak is measured on it, not on each replica's). */
  list(): Promise<{ now: Date; records: FeatureRecord[] }>;
  get(feature: string): Promise<{ now: Date; record: FeatureRecord }>;
  /** Applies one change and its history row in one transaction, or throws CUTOVER_ERR_CONFLICT. */
  change(change: StateChange): Promise<{ record: FeatureRecord; historyId: number }>;
  /** Stores a baseline for the step at `version` without bumping it; false when the row has moved on. */
  setBaseline(feature: string, version: number, baseline: Baseline): Promise<boolean>;
  /** Appends a history row that changes no state (a refused advance). */
  record(feature: string, entry: HistoryInput): Promise<number>;
  history(query?: { feature?: string; limit?: number; beforeId?: number }): Promise<HistoryEntry[]>;
  /** The newest history row of each feature that changed its state (refusals left out). */
  lastChanges(): Promise<Map<string, HistoryEntry>>;
}

/** History actions that moved a feature's state (the others record decisions that did not). */
const STATE_CHANGES: HistoryAction[] = ['advance', 'rollback', 'auto-rollback', 'pause', 'resume'];

const READ_COLUMNS = ['feature', 'step', 'step_name', 'mode', 'percent', 'regions', 'paused', 'version', 'updated_at'] as const;

interface Row {
  feature: string;
  step: number;
  step_name: string;
  mode: RoutingMode;
  percent: string | number;
  regions: string | null;
  paused: number | boolean;
  version: number;
  updated_at: string;
  step_started_at?: string;
  baseline?: string | null;
}

/** `dateStrings: true` in UTC: '2026-11-27 21:31:37.123' → a Date. */
export function dbTime(value: string | Date): Date {
  if (value instanceof Date) return value;
  return new Date(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
}

function parseRegions(text: string | null): string[] | null {
  if (text === null || text === '') return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.map(String) : null;
  } catch {
    return null;
  }
}

function toState(row: Row): FeatureState {
  return {
    feature: row.feature,
    step: Number(row.step),
    stepName: row.step_name,
    mode: row.mode,
    percent: Number(row.percent),
    regions: parseRegions(row.regions),
    paused: Boolean(Number(row.paused)),
    version: Number(row.version),
    updatedAt: dbTime(row.updated_at).toISOString(),
  };
}

function toRecord(row: Row): FeatureRecord {
  let baseline: Baseline | null = null;
  if (row.baseline) {
    try {
      baseline = JSON.parse(row.baseline) as Baseline;
    } catch {
      baseline = null; // a corrupt baseline is retaken, never trusted
    }
  }
  return {
    ...toState(row),
    feature: row.feature,
    stepStartedAt: dbTime(row.step_started_at ?? row.updated_at).toISOString(),
    baseline,
  };
}

/** What a feature without a row (or before the first read) is: legacy, version 0. */
export const legacyState = legacyFeatureState;

function clip(text: string | null | undefined, max: number): string | null {
  if (text === null || text === undefined) return null;
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

function readingsJson(readings: GateReading[] | null | undefined): string | null {
  if (!readings) return null;
  const text = JSON.stringify(readings);
  // TEXT holds 64 KiB; twenty gates never come near it, but a history row must never fail to write.
  return text.length > 60_000 ? JSON.stringify(readings.map((r) => ({ ...r, message: clip(r.message, 200) }))).slice(0, 60_000) : text;
}

function toHistory(row: Record<string, unknown>): HistoryEntry {
  let readings: GateReading[] | null = null;
  if (typeof row.readings === 'string' && row.readings !== '') {
    try {
      readings = JSON.parse(row.readings) as GateReading[];
    } catch {
      readings = null;
    }
  }
  return {
    id: Number(row.id),
    feature: String(row.feature),
    action: String(row.action),
    from_step: Number(row.from_step),
    to_step: Number(row.to_step),
    actor: String(row.actor),
    reason: (row.reason as string | null) ?? null,
    readings,
    at: dbTime(row.at as string).toISOString(),
  };
}

/**
 * Inserts a row per feature into `table` unless it has one (idempotent, safe from concurrent
 * replicas), once per process; a failure is retried by the next call.
 */
export function featureRowsEnsurer(db: Knex, table: string, features: readonly string[]): () => Promise<void> {
  let ensured: Promise<void> | undefined;
  return () =>
    (ensured ??= db(table)
      .insert(features.map((feature) => ({ feature })))
      .onConflict('feature')
      .ignore()
      .then(
        () => undefined,
        (err: unknown) => {
          ensured = undefined;
          throw err;
        },
      ));
}

export function createCutoverStateStore(options: {
  db: Knex;
  /** The features it keeps rows for and lists, in this order: the plan's (default FEATURES, this system's). */
  features?: readonly string[];
}): CutoverStateStore {
  const { db } = options;
  const features = options.features ?? FEATURES;
  const ensureRows = featureRowsEnsurer(db, 'cutover_features', features);

  const selectRecord = (q: Knex | Knex.Transaction) =>
    q('cutover_features').select(...READ_COLUMNS, 'step_started_at', 'baseline', q.raw('CURRENT_TIMESTAMP(3) AS db_now'));

  async function get(feature: string): Promise<{ now: Date; record: FeatureRecord }> {
    let row = (await selectRecord(db).where({ feature }).first()) as (Row & { db_now: string }) | undefined;
    if (!row) {
      await ensureRows();
      row = (await selectRecord(db).where({ feature }).first()) as (Row & { db_now: string }) | undefined;
      if (!row) throw new Error(`cutover_features has no row for ${feature} after inserting it`);
    }
    return { now: dbTime(row.db_now), record: toRecord(row) };
  }

  return {
    ensureRows,
    get,
    async list() {
      await ensureRows();
      const rows = (await selectRecord(db).orderBy('feature')) as Array<Row & { db_now: string }>;
      const now = rows[0] ? dbTime(rows[0].db_now) : new Date();
      const byName = new Map(rows.map((r) => [r.feature, toRecord(r)]));
      // Plan order, not alphabetical; rows of features this plan does not name are left out.
      const records = features.flatMap((f) => (byName.has(f) ? [byName.get(f)!] : []));
      return { now, records };
    },

    async change(change) {
      await ensureRows();
      const { feature, expectedVersion, set, history } = change;
      try {
        return await db.transaction(async (trx) => {
          const update: Record<string, unknown> = {
            version: trx.raw('version + 1'),
            updated_at: trx.raw('CURRENT_TIMESTAMP(3)'),
          };
          if (set.step) {
            update.step = set.step.step;
            update.step_name = set.step.stepName;
            update.mode = set.step.routing.mode;
            update.percent = set.step.routing.percent;
            update.regions = set.step.routing.regions === null ? null : JSON.stringify(set.step.routing.regions);
          }
          if (set.paused !== undefined) update.paused = set.paused;
          if (set.restartSoak) update.step_started_at = trx.raw('CURRENT_TIMESTAMP(3)');
          if (set.baseline !== undefined) update.baseline = set.baseline === null ? null : JSON.stringify(set.baseline);
          const updated = await trx('cutover_features').where({ feature, version: expectedVersion }).update(update);
          if (updated !== 1) throw new ConflictSignal();
          const [historyId] = await trx('cutover_history').insert({
            feature,
            action: history.action,
            from_step: history.fromStep,
            to_step: history.toStep,
            actor: clip(history.actor, 128) ?? 'unknown',
            reason: clip(history.reason, 512),
            readings: readingsJson(history.readings),
            at: trx.raw('CURRENT_TIMESTAMP(3)'),
          });
          const row = (await selectRecord(trx).where({ feature }).first()) as Row;
          return { record: toRecord(row), historyId: Number(historyId) };
        });
      } catch (err) {
        if (!(err instanceof ConflictSignal)) throw err;
        const now = await get(feature);
        throw cutoverError(
          'CUTOVER_ERR_CONFLICT',
          `${feature} changed while this request ran (it was at version ${expectedVersion}, it is now at version ${now.record.version}, step ${now.record.step} ${now.record.stepName}); check the status and retry`,
          { version: now.record.version },
        );
      }
    },

    async setBaseline(feature, version, baseline) {
      const updated = await db('cutover_features').where({ feature, version }).update({ baseline: JSON.stringify(baseline) });
      return updated === 1;
    },

    async record(feature, entry) {
      const [id] = await db('cutover_history').insert({
        feature,
        action: entry.action,
        from_step: entry.fromStep,
        to_step: entry.toStep,
        actor: clip(entry.actor, 128) ?? 'unknown',
        reason: clip(entry.reason, 512),
        readings: readingsJson(entry.readings),
        at: db.raw('CURRENT_TIMESTAMP(3)'),
      });
      return Number(id);
    },

    async history(query = {}) {
      const limit = Math.min(Math.max(query.limit ?? 50, 1), 1000);
      const q = db('cutover_history').select('*').orderBy('id', 'desc').limit(limit);
      if (query.feature) q.where({ feature: query.feature });
      if (query.beforeId !== undefined) q.where('id', '<', query.beforeId);
      return ((await q) as Array<Record<string, unknown>>).map(toHistory);
    },

    async lastChanges() {
      const rows = (await db('cutover_history as h')
        // A refusal, an alert or an autopilot note changed nothing, so it is not the feature's last change.
        .join(db('cutover_history').select('feature').max({ id: 'id' }).whereIn('action', STATE_CHANGES).groupBy('feature').as('m'), 'h.id', 'm.id')
        .select('h.*')) as Array<Record<string, unknown>>;
      return new Map(rows.map((r) => [String(r.feature), toHistory(r)]));
    },
  };
}

class ConflictSignal extends Error {}

// ---------------------------------------------------------------------------
// The reader every proxy replica (and agent) runs

/** The MySQL poller (lib/cutover/polled-source.ts) over `cutover_features`. */
export interface CutoverStateReader extends PolledStateSource {
  /** Stops polling (and closes the pool when the reader made it from a DbConfig). Idempotent. */
  close(): Promise<void>;
}

/**
 * Implements FeatureStateSource by polling `cutover_features` with one
 * small query per interval, so every replica applies a change within about
 * `intervalMs` and a restarted one starts from the stored state. Features
 * without a row read as legacy (version 0).
 *
 * @example
 *   const reader = createCutoverStateReader({ db, intervalMs: 1000 });
 *   reader.on('change', ({ feature, state }) => log.info({ feature, mode: state.mode }, 'cutover state'));
 *   await reader.start();
 *   goesNew('event-delivery', reader.get('event-delivery')!, { key: 'hv-7', region: 'nyc1' });
 */
export function createCutoverStateReader(options: {
  /** A Knex (used as is, left open) or connection settings (the reader opens a pool of one and closes it). */
  db: Knex | DbConfig;
  intervalMs?: number;
  logger?: Logger;
  onChange?: (change: FeatureStateChange) => void;
}): CutoverStateReader {
  const intervalMs = options.intervalMs ?? 1000;
  if (!Number.isFinite(intervalMs) || intervalMs < 10) throw new RangeError(`intervalMs must be at least 10, got ${intervalMs}`);
  const logger = (options.logger ?? silentLogger()).child({ component: 'cutover-reader' });
  const ownsDb = typeof options.db !== 'function';
  const db: Knex = typeof options.db === 'function' ? options.db : createKnex(options.db, { poolMax: 1 });
  let closing: Promise<void> | undefined;
  const polled = createPolledStateSource({
    read: async () => ((await db('cutover_features').select(...READ_COLUMNS)) as Row[]).map(toState),
    intervalMs,
    logger,
    unavailable: 'cannot read cutover state; keeping the last one',
    recovered: 'cutover state readable again',
  });
  if (options.onChange) polled.on('change', options.onChange);
  const reader: CutoverStateReader = Object.assign(polled, {
    close() {
      closing ??= (async () => {
        await polled.stop();
        if (ownsDb) await db.destroy();
      })();
      return closing;
    },
  });
  return reader;
}
