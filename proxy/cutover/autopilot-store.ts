import type { Knex } from 'knex';
import { FEATURES } from '../../lib/cutover/types.ts';
import type { GateReading } from './gates.ts';
import { dbTime, featureRowsEnsurer } from './state-store.ts';

/**
 * The autopilot's rows in MySQL (migrations/008_cutover_autopilot.ts): per
 * feature, its run and the analysis counters of the current step, and the
 * lease that lets exactly one admin replica analyse a feature at a time
 * (another takes over when the lease runs out: a crash or a restart loses
 * at most one interval).
 */

export type RunState = 'idle' | 'running' | 'waiting' | 'done' | 'rolled-back' | 'stopped';
export type AnalysisOutcome = 'pass' | 'fail' | 'no-data';

export interface AutopilotRecord {
  feature: string;
  run: RunState;
  run_all: boolean;
  run_actor: string | null;
  run_started_at: string | null;
  approved_version: number | null;
  feature_version: number;
  checks: number;
  passes: number;
  failures: number;
  no_data: number;
  last_outcome: AnalysisOutcome | null;
  last_check_at: string | null;
  next_check_at: string | null;
  /** Why the autopilot is not moving (soak left, passes to go, manual judgement, a webhook, a requirement). */
  waiting: string | null;
  readings: GateReading[] | null;
  owner: string | null;
  lease_until: string | null;
}

export interface AnalysisRun {
  id: number;
  feature: string;
  feature_version: number;
  step: number;
  step_name: string;
  outcome: AnalysisOutcome;
  soaked: boolean;
  passes: number;
  failures: number;
  readings: GateReading[] | null;
  at: string;
}

export type AutopilotUpdate = Partial<Omit<AutopilotRecord, 'feature' | 'owner' | 'lease_until'>>;

export interface AutopilotStore {
  list(): Promise<{ now: Date; records: AutopilotRecord[] }>;
  get(feature: string): Promise<AutopilotRecord>;
  update(feature: string, set: AutopilotUpdate): Promise<void>;
  /** Takes (or renews) the feature's lease for `seconds`; false while another replica holds it. */
  lease(feature: string, owner: string, seconds: number): Promise<boolean>;
  /** Gives the leases of `owner` up (close), so another replica takes over at once. */
  release(owner: string): Promise<void>;
  recordRun(run: Omit<AnalysisRun, 'id' | 'at'>): Promise<void>;
  runs(query: { feature: string; sinceId?: number; limit?: number; fromVersion?: number }): Promise<AnalysisRun[]>;
}

function parseJson<T>(text: unknown): T | null {
  if (typeof text !== 'string' || text === '') return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : dbTime(v as string).toISOString());

function toRecord(row: Record<string, unknown>): AutopilotRecord {
  return {
    feature: row.feature as string,
    run: row.run as RunState,
    run_all: Boolean(Number(row.run_all)),
    run_actor: (row.run_actor as string | null) ?? null,
    run_started_at: iso(row.run_started_at),
    approved_version: row.approved_version === null ? null : Number(row.approved_version),
    feature_version: Number(row.feature_version),
    checks: Number(row.checks),
    passes: Number(row.passes),
    failures: Number(row.failures),
    no_data: Number(row.no_data),
    last_outcome: (row.last_outcome as AnalysisOutcome | null) ?? null,
    last_check_at: iso(row.last_check_at),
    next_check_at: iso(row.next_check_at),
    waiting: (row.waiting as string | null) ?? null,
    readings: parseJson<GateReading[]>(row.readings),
    owner: (row.owner as string | null) ?? null,
    lease_until: iso(row.lease_until),
  };
}

/** ISO → the DATETIME(3) text MySQL takes, in UTC (the pool runs with timezone Z). */
function toDb(value: string | null): string | null {
  return value === null ? null : value.replace('T', ' ').replace('Z', '');
}

function readingsText(readings: GateReading[] | null | undefined): string | null {
  if (!readings) return null;
  const text = JSON.stringify(readings);
  return text.length > 60_000 ? JSON.stringify(readings.map((r) => ({ ...r, message: r.message.slice(0, 200) }))).slice(0, 60_000) : text;
}

/**
 * @example
 *   const autopilot = createAutopilotStore({ db });
 *   if (await autopilot.lease('scheduling', 'admin@host:123', 30)) { … }
 */
export function createAutopilotStore(options: {
  db: Knex;
  /** The plan's features, in plan order (default FEATURES). */
  features?: readonly string[];
  /** Analysis runs kept per feature (older ones are deleted). Default 2000. */
  keepRuns?: number;
}): AutopilotStore {
  const { db } = options;
  const features = options.features ?? FEATURES;
  const keepRuns = options.keepRuns ?? 2000;
  const ensureRows = featureRowsEnsurer(db, 'cutover_autopilot', features);
  let inserted = 0;

  return {
    async list() {
      await ensureRows();
      const rows = (await db('cutover_autopilot').select('*', db.raw('CURRENT_TIMESTAMP(3) AS db_now'))) as Array<Record<string, unknown>>;
      const byName = new Map(rows.map((r) => [String(r.feature), toRecord(r)]));
      return { now: rows[0] ? dbTime(rows[0].db_now as string) : new Date(), records: features.flatMap((f) => (byName.has(f) ? [byName.get(f)!] : [])) };
    },
    async get(feature) {
      await ensureRows();
      return toRecord((await db('cutover_autopilot').where({ feature }).first()) as Record<string, unknown>);
    },
    async update(feature, set) {
      await ensureRows();
      const row: Record<string, unknown> = { updated_at: db.raw('CURRENT_TIMESTAMP(3)') };
      for (const [key, value] of Object.entries(set)) {
        if (value === undefined) continue;
        if (key === 'readings') row.readings = readingsText(value as GateReading[] | null);
        else if (key.endsWith('_at')) row[key] = toDb(value as string | null);
        else if (key === 'waiting') row.waiting = value === null ? null : String(value).slice(0, 512);
        else row[key] = value;
      }
      await db('cutover_autopilot').where({ feature }).update(row);
    },
    async lease(feature, owner, seconds) {
      await ensureRows();
      const updated = await db('cutover_autopilot')
        .where({ feature })
        .andWhere((q) => q.where({ owner }).orWhereNull('owner').orWhere('lease_until', '<', db.raw('CURRENT_TIMESTAMP(3)')))
        .update({ owner, lease_until: db.raw('CURRENT_TIMESTAMP(3) + INTERVAL ? MICROSECOND', [Math.round(seconds * 1e6)]) });
      return updated === 1;
    },
    async release(owner) {
      await db('cutover_autopilot').where({ owner }).update({ owner: null, lease_until: null });
    },
    async recordRun(run) {
      await db('cutover_analysis_runs').insert({ ...run, soaked: run.soaked, readings: readingsText(run.readings), at: db.raw('CURRENT_TIMESTAMP(3)') });
      // Continuous analysis runs for as long as a step stands: keep the newest runs of each feature.
      if (++inserted % 100 === 0) {
        const [[row]] = (await db.raw('SELECT id FROM cutover_analysis_runs WHERE feature = ? ORDER BY id DESC LIMIT 1 OFFSET ?', [run.feature, keepRuns])) as [[{ id: number } | undefined]];
        if (row) await db('cutover_analysis_runs').where({ feature: run.feature }).andWhere('id', '<=', row.id).delete();
      }
    },
    async runs(query) {
      const q = db('cutover_analysis_runs').where({ feature: query.feature }).orderBy('id', 'asc').limit(Math.min(query.limit ?? 500, 5000));
      if (query.sinceId !== undefined) q.andWhere('id', '>', query.sinceId);
      if (query.fromVersion !== undefined) q.andWhere('feature_version', '>=', query.fromVersion);
      return ((await q) as Array<Record<string, unknown>>).map((r) => ({
        id: Number(r.id),
        feature: String(r.feature),
        feature_version: Number(r.feature_version),
        step: Number(r.step),
        step_name: String(r.step_name),
        outcome: r.outcome as AnalysisOutcome,
        soaked: Boolean(Number(r.soaked)),
        passes: Number(r.passes),
        failures: Number(r.failures),
        readings: parseJson<GateReading[]>(r.readings),
        at: dbTime(r.at as string).toISOString(),
      }));
    },
  };
}
