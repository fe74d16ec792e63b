import { readFileSync } from 'node:fs';
import { FEATURE_NAME, type Routing } from '../../lib/cutover/types.ts';
import { cutoverError, quote } from './errors.ts';
import { parseSelector } from './selectors.ts';

/**
 * The declarative cutover plan: for each feature, the ordered steps that
 * move it from legacy to the new path, each with a soak time and the gates
 * that must pass over that soak before the next step.
 *
 * Step 0 is always the implicit `legacy` step (no gates, nothing to soak);
 * the plan's steps are 1..n, and the last one must be `full`.
 */
export interface CutoverPlan {
  version: 1;
  description?: string;
  /** Feature name (FEATURE_NAME: this system's are FEATURES; another system's migration names its own) → its steps, in plan order. */
  features: Partial<Record<string, PlanFeature>>;
}

export interface PlanFeature {
  description?: string;
  steps: PlanStep[];
}

export type StepMode = 'shadow' | 'canary' | 'full';

export interface PlanStep {
  /** Unique within the feature: lower-case letters, digits, `.`, `_`, `+`, `-`. */
  name: string;
  mode: StepMode;
  /** Canary only: share (0 < p <= 100) of sticky keys that go new. Defaults to 100 when `regions` is given. */
  percent?: number;
  /** Canary only: the regions the canary covers; absent or null means every region. */
  regions?: string[] | null;
  /** How long the step must run (and its gates hold) before `advance` may leave it. */
  soak_seconds: number;
  gates: Gate[];
  /**
   * Other features that must already be at least at this mode (shadow < canary < full) before
   * `advance` may enter the step. Rolling one of them back below it first rolls this feature
   * back to legacy (`lockdown` requires every writer to be off `events` already).
   */
  requires?: Record<string, StepMode>;
  description?: string;
}

const MODE_RANK: Record<string, number> = { legacy: 0, shadow: 1, canary: 2, full: 3 };

/** Whether a feature at `mode` satisfies a step's requirement of `required`. */
export function modeSatisfies(mode: string, required: StepMode): boolean {
  return (MODE_RANK[mode] ?? 0) >= MODE_RANK[required]!;
}

interface GateBase {
  /** Unique within the step; defaults to `<kind>:<service>`. */
  name?: string;
  /** A key of the `services` map given at run time; its `/metrics` is scraped. */
  service: string;
  description?: string;
}

/** increase(errors) / increase(total) over the soak window must stay <= max. */
export interface ErrorRateGate extends GateBase {
  kind: 'error_rate';
  errors: string;
  total: string;
  /** Ratio 0..1. */
  max: number;
  /** Fewer requests than this in the window is "no-data" (blocks advance, never rolls back). Default 1. */
  min_samples?: number;
}

/** The quantile of a histogram's observations over the soak window must stay <= max_seconds. */
export interface LatencyGate extends GateBase {
  kind: 'latency';
  /** The histogram's base name with label matchers (no `_bucket`, no `le`). */
  histogram: string;
  /** Default 0.99. */
  quantile?: number;
  max_seconds: number;
  min_samples?: number;
}

/** increase(mismatches) / increase(total) of shadow comparisons over the soak window must stay <= max. */
export interface ShadowMismatchGate extends GateBase {
  kind: 'shadow_mismatch_rate';
  mismatches: string;
  total: string;
  max: number;
  min_samples?: number;
}

/** A gauge read now (aggregated over the matching series) must stay within min..max. */
export interface GaugeGate extends GateBase {
  kind: 'gauge';
  metric: string;
  /** How to combine matching series. Default sum. */
  aggregate?: 'sum' | 'max' | 'min' | 'avg';
  max?: number;
  min?: number;
}

export type Gate = ErrorRateGate | LatencyGate | ShadowMismatchGate | GaugeGate;
export type GateKind = Gate['kind'];
export const GATE_KINDS: readonly GateKind[] = ['error_rate', 'latency', 'shadow_mismatch_rate', 'gauge'];

/** Soak longer than a week is a typo, not a plan. */
export const MAX_SOAK_SECONDS = 7 * 24 * 3600;
export const MAX_STEPS = 50;
export const MAX_GATES = 20;

const STEP_NAME = /^[a-z0-9][a-z0-9._+-]{0,63}$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,31}$/;
const SERVICE = /^[a-z][a-z0-9_-]{0,31}$/;
const GATE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$/;

/** The plan's feature of that name, or undefined (an unknown name, or one inherited from Object.prototype). */
export function planFeature(plan: CutoverPlan, feature: string): PlanFeature | undefined {
  return Object.hasOwn(plan.features, feature) ? plan.features[feature] : undefined;
}

/** The routing a step applies; step 0 (legacy) is LEGACY_ROUTING. */
export function stepRouting(step: PlanStep): Routing {
  switch (step.mode) {
    case 'shadow':
      return { mode: 'shadow', percent: 0, regions: null };
    case 'full':
      return { mode: 'full', percent: 100, regions: null };
    case 'canary':
      return { mode: 'canary', percent: step.percent ?? 100, regions: step.regions ?? null };
  }
}

/** The display name of a gate: its own, or `<kind>:<service>`. */
export function gateName(gate: Gate, index: number, all: readonly Gate[]): string {
  if (gate.name) return gate.name;
  const base = `${gate.kind}:${gate.service}`;
  return all.filter((g) => !g.name && `${g.kind}:${g.service}` === base).length > 1 ? `${base}#${index + 1}` : base;
}

// ---------------------------------------------------------------------------
// Validation

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

class Checker {
  readonly errors: string[] = [];
  add(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }
  object(path: string, value: unknown): Record<string, unknown> | undefined {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    this.add(path, `must be an object, got ${typeName(value)}`);
    return undefined;
  }
  fields(path: string, obj: Record<string, unknown>, accepted: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!accepted.includes(key)) this.add(`${path}.${key}`, `unknown field; accepted fields are ${accepted.join(', ')}`);
    }
  }
  string(path: string, value: unknown, pattern?: RegExp, hint?: string): value is string {
    if (typeof value !== 'string') {
      this.add(path, `must be a string${hint ? ` (${hint})` : ''}, got ${typeName(value)}`);
      return false;
    }
    if (pattern && !pattern.test(value)) {
      this.add(path, `${quote(value)} is not valid${hint ? `: ${hint}` : ''}`);
      return false;
    }
    return true;
  }
  optionalString(path: string, value: unknown, max = 500): void {
    if (value === undefined) return;
    if (typeof value !== 'string') this.add(path, `must be a string, got ${typeName(value)}`);
    else if (value.length > max) this.add(path, `must be at most ${max} characters`);
  }
  number(path: string, value: unknown, min: number, max: number, options: { integer?: boolean; exclusiveMin?: boolean } = {}): value is number {
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (options.exclusiveMin ? value > min : value >= min) &&
      value <= max &&
      (!options.integer || Number.isInteger(value));
    if (!ok) {
      const kind = options.integer ? 'an integer' : 'a number';
      this.add(path, `must be ${kind} ${options.exclusiveMin ? `above ${min}` : `from ${min}`} to ${max}, got ${quote(value)}`);
    }
    return ok;
  }
  selector(path: string, value: unknown, options: { histogram?: boolean } = {}): void {
    if (!this.string(path, value, undefined, `a selector such as "metric_name{label='value'}"`)) return;
    try {
      const sel = parseSelector(value);
      if (options.histogram) {
        if (/_(bucket|count|sum)$/.test(sel.metric)) this.add(path, `name the histogram without _bucket/_count/_sum, got ${quote(sel.metric)}`);
        if (sel.matchers.some((m) => m.label === 'le')) this.add(path, 'must not match on the le label; the gate reads every bucket');
      }
    } catch (err) {
      this.add(path, (err as Error).message);
    }
  }
}

function checkGate(c: Checker, path: string, value: unknown): void {
  const gate = c.object(path, value);
  if (!gate) return;
  const common = ['kind', 'name', 'service', 'description'];
  if (gate.name !== undefined) c.string(`${path}.name`, gate.name, GATE_NAME, 'letters, digits and . _ : + -, at most 64');
  c.string(`${path}.service`, gate.service, SERVICE, 'a service name such as "proxy" (lower-case, at most 32)');
  c.optionalString(`${path}.description`, gate.description);
  const minSamples = () => {
    if (gate.min_samples !== undefined) c.number(`${path}.min_samples`, gate.min_samples, 0, 1e12, { integer: true });
  };
  switch (gate.kind) {
    case 'error_rate':
      c.fields(path, gate, [...common, 'errors', 'total', 'max', 'min_samples']);
      c.selector(`${path}.errors`, gate.errors);
      c.selector(`${path}.total`, gate.total);
      c.number(`${path}.max`, gate.max, 0, 1);
      minSamples();
      return;
    case 'shadow_mismatch_rate':
      c.fields(path, gate, [...common, 'mismatches', 'total', 'max', 'min_samples']);
      c.selector(`${path}.mismatches`, gate.mismatches);
      c.selector(`${path}.total`, gate.total);
      c.number(`${path}.max`, gate.max, 0, 1);
      minSamples();
      return;
    case 'latency':
      c.fields(path, gate, [...common, 'histogram', 'quantile', 'max_seconds', 'min_samples']);
      c.selector(`${path}.histogram`, gate.histogram, { histogram: true });
      if (gate.quantile !== undefined) c.number(`${path}.quantile`, gate.quantile, 0, 1, { exclusiveMin: true });
      c.number(`${path}.max_seconds`, gate.max_seconds, 0, 3600, { exclusiveMin: true });
      minSamples();
      return;
    case 'gauge':
      c.fields(path, gate, [...common, 'metric', 'aggregate', 'max', 'min']);
      c.selector(`${path}.metric`, gate.metric);
      if (gate.aggregate !== undefined && !['sum', 'max', 'min', 'avg'].includes(gate.aggregate as string)) {
        c.add(`${path}.aggregate`, `must be one of sum, max, min, avg, got ${quote(gate.aggregate)}`);
      }
      if (gate.max === undefined && gate.min === undefined) c.add(`${path}.max`, 'a gauge gate needs max, min or both');
      if (gate.max !== undefined) c.number(`${path}.max`, gate.max, -1e15, 1e15);
      if (gate.min !== undefined) c.number(`${path}.min`, gate.min, -1e15, 1e15);
      if (typeof gate.max === 'number' && typeof gate.min === 'number' && gate.min > gate.max) c.add(`${path}.min`, `is above max (${gate.max})`);
      return;
    default:
      c.add(`${path}.kind`, `must be one of ${GATE_KINDS.join(', ')}, got ${quote(gate.kind)}`);
  }
}

function checkStep(c: Checker, path: string, value: unknown, isLast: boolean, features: readonly string[]): string | undefined {
  const step = c.object(path, value);
  if (!step) return undefined;
  c.fields(path, step, ['name', 'mode', 'percent', 'regions', 'soak_seconds', 'gates', 'requires', 'description']);
  if (step.requires !== undefined) {
    const req = c.object(`${path}.requires`, step.requires);
    if (req) {
      for (const [feature, mode] of Object.entries(req)) {
        if (!features.includes(feature)) c.add(`${path}.requires.${feature}`, `names no feature of this plan; its features are ${features.join(', ')}`);
        if (!['shadow', 'canary', 'full'].includes(mode as string)) c.add(`${path}.requires.${feature}`, `must be one of shadow, canary, full, got ${quote(mode)}`);
      }
    }
  }
  const named = c.string(`${path}.name`, step.name, STEP_NAME, 'lower-case letters, digits and . _ + -, at most 64');
  if (named && step.name === 'legacy') c.add(`${path}.name`, '"legacy" is the implicit step 0; pick another name');
  c.optionalString(`${path}.description`, step.description);
  if (!['shadow', 'canary', 'full'].includes(step.mode as string)) {
    c.add(`${path}.mode`, `must be one of shadow, canary, full, got ${quote(step.mode)}`);
  } else if (step.mode === 'canary') {
    if (step.percent === undefined && (step.regions === undefined || step.regions === null)) {
      c.add(`${path}.percent`, 'a canary step needs percent, regions or both');
    }
    if (step.percent !== undefined) c.number(`${path}.percent`, step.percent, 0, 100, { exclusiveMin: true });
    if (step.regions !== undefined && step.regions !== null) {
      if (!Array.isArray(step.regions) || step.regions.length === 0 || step.regions.length > 1000) {
        c.add(`${path}.regions`, `must be a non-empty array of region slugs or null, got ${typeName(step.regions)}`);
      } else {
        const seen = new Set<string>();
        step.regions.forEach((r, i) => {
          if (c.string(`${path}.regions[${i}]`, r, REGION, 'a region slug such as "nyc1"')) {
            if (seen.has(r)) c.add(`${path}.regions[${i}]`, `${quote(r)} appears twice`);
            seen.add(r);
          }
        });
      }
    }
  } else {
    // shadow and full route by mode alone; a percent or regions there would be silently ignored.
    if (step.percent !== undefined) c.add(`${path}.percent`, `only a canary step takes percent (this step is ${step.mode})`);
    if (step.regions !== undefined) c.add(`${path}.regions`, `only a canary step takes regions (this step is ${step.mode})`);
  }
  if (isLast && step.mode !== 'full' && typeof step.mode === 'string') c.add(`${path}.mode`, 'the last step must be "full"');
  if (!isLast && step.mode === 'full') c.add(`${path}.mode`, '"full" may only be the last step');
  c.number(`${path}.soak_seconds`, step.soak_seconds, 0, MAX_SOAK_SECONDS, { integer: true });
  if (!Array.isArray(step.gates)) {
    c.add(`${path}.gates`, `must be an array (possibly empty), got ${typeName(step.gates)}`);
  } else if (step.gates.length > MAX_GATES) {
    c.add(`${path}.gates`, `at most ${MAX_GATES} gates, got ${step.gates.length}`);
  } else {
    step.gates.forEach((g, i) => checkGate(c, `${path}.gates[${i}]`, g));
    if (c.errors.length === 0) {
      const names = new Map<string, number>();
      (step.gates as Gate[]).forEach((g, i, all) => {
        const n = gateName(g, i, all);
        if (names.has(n)) c.add(`${path}.gates[${i}].name`, `${quote(n)} is also the name of gates[${names.get(n)}]`);
        names.set(n, i);
      });
    }
  }
  return named ? (step.name as string) : undefined;
}

/**
 * Checks a parsed plan file and returns it typed. Every problem is
 * reported at once, each naming its field (`features.event-delivery.steps[2].gates[0].max`),
 * in one CUTOVER_ERR_INVALID_PLAN whose `details.errors` lists them.
 *
 * @example
 *   const plan = validatePlan(JSON.parse(readFileSync('plan.json', 'utf8')));
 */
export function validatePlan(input: unknown): CutoverPlan {
  const c = new Checker();
  const plan = c.object('plan', input);
  if (plan) {
    c.fields('plan', plan, ['version', 'description', 'features']);
    if (plan.version !== 1) c.add('version', `must be 1, got ${quote(plan.version)}`);
    c.optionalString('description', plan.description, 2000);
    const features = c.object('features', plan.features);
    if (features) {
      const names = Object.keys(features);
      if (names.length === 0) c.add('features', 'must name at least one feature, e.g. { "event-delivery": { "steps": [...] } }');
      for (const [name, value] of Object.entries(features)) {
        const path = `features.${name}`;
        if (!FEATURE_NAME.test(name)) {
          c.add(path, `${quote(name)} is not a valid feature name: lower-case letters, digits, . _ and -, at most 64 (as the proxy config names it)`);
          continue;
        }
        const feature = c.object(path, value);
        if (!feature) continue;
        c.fields(path, feature, ['description', 'steps']);
        c.optionalString(`${path}.description`, feature.description, 2000);
        if (!Array.isArray(feature.steps) || feature.steps.length === 0 || feature.steps.length > MAX_STEPS) {
          c.add(`${path}.steps`, `must be an array of 1 to ${MAX_STEPS} steps, got ${typeName(feature.steps)}`);
          continue;
        }
        const seen = new Map<string, number>();
        feature.steps.forEach((s, i) => {
          const stepName = checkStep(c, `${path}.steps[${i}]`, s, i === (feature.steps as unknown[]).length - 1, names);
          if (stepName === undefined) return;
          if (seen.has(stepName)) c.add(`${path}.steps[${i}].name`, `${quote(stepName)} is also the name of steps[${seen.get(stepName)}]`);
          seen.set(stepName, i);
        });
      }
    }
  }
  if (c.errors.length > 0) {
    const shown = c.errors.slice(0, 10).join('; ');
    const more = c.errors.length > 10 ? `; and ${c.errors.length - 10} more` : '';
    throw cutoverError('CUTOVER_ERR_INVALID_PLAN', `invalid cutover plan: ${shown}${more}`, { errors: c.errors });
  }
  return input as CutoverPlan;
}

/** Reads and validates a plan file; a JSON syntax error is reported as CUTOVER_ERR_INVALID_PLAN too. */
export function loadPlanFile(path: string | URL): CutoverPlan {
  const text = readFileSync(path, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw cutoverError('CUTOVER_ERR_INVALID_PLAN', `plan file ${String(path)} is not valid JSON: ${(cause as Error).message}`, {}, cause);
  }
  return validatePlan(parsed);
}

export const DEFAULT_PLAN_URL = new URL('./default-plan.json', import.meta.url);

/** The plan the demo runs (proxy/cutover/default-plan.json), validated. */
export function loadDefaultPlan(): CutoverPlan {
  return loadPlanFile(DEFAULT_PLAN_URL);
}

/** Every service name the plan's gates read. */
export function planServices(plan: CutoverPlan): string[] {
  const names = new Set<string>();
  for (const feature of Object.values(plan.features)) for (const step of feature?.steps ?? []) for (const g of step.gates) names.add(g.service);
  return [...names].sort();
}

/**
 * Region-by-region steps for a feature such as event-delivery: a small
 * canary inside the first region, then one more region per step, then
 * `full`. The demo builds its event-delivery plan from its own regions.
 *
 * @example
 *   plan.features['event-delivery'] = { steps: regionRolloutSteps(['nyc1', 'sfo1'], { soakSeconds: 10, gates }) };
 */
export function regionRolloutSteps(
  regions: readonly string[],
  options: { soakSeconds: number; gates: Gate[]; firstPercent?: number },
): PlanStep[] {
  const steps: PlanStep[] = [];
  if (regions.length > 0 && options.firstPercent !== undefined && options.firstPercent < 100) {
    steps.push({
      name: `${regions[0]}-${options.firstPercent}pct`,
      mode: 'canary',
      percent: options.firstPercent,
      regions: [regions[0]!],
      soak_seconds: options.soakSeconds,
      gates: options.gates,
    });
  }
  // The last region is covered by `full`, which also takes any region added since.
  for (let i = 1; i < regions.length; i++) {
    steps.push({
      name: i === 1 ? regions[0]! : `${regions[0]}-to-${regions[i - 1]}`,
      mode: 'canary',
      percent: 100,
      regions: regions.slice(0, i),
      soak_seconds: options.soakSeconds,
      gates: options.gates,
    });
  }
  steps.push({ name: 'all-regions', mode: 'full', soak_seconds: options.soakSeconds, gates: options.gates });
  return steps;
}
