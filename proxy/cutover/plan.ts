import { readFileSync } from 'node:fs';
import { FEATURE_NAME, type Routing } from '../../lib/cutover/types.ts';
import { cutoverError } from './errors.ts';
import { quote } from '../../lib/errors.ts';
import { Checker, typeName } from './plan-checker.ts';
import { checkAnalysis, checkExternalGate, checkWebhooks } from './plan-checks.ts';

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
  /** Analysis defaults for every feature and step (each may override them). */
  analysis?: AnalysisSpec;
  /** Confirm hooks (before a step) and notifications (after every change): proxy/cutover/webhooks.ts. */
  webhooks?: WebhookSpec[];
  /** Feature name (FEATURE_NAME: this system's are FEATURES; another system's migration names its own) → its steps, in plan order. */
  features: Partial<Record<string, PlanFeature>>;
}

export interface PlanFeature {
  description?: string;
  /** Overrides the plan's analysis defaults for this feature's steps. */
  analysis?: AnalysisSpec;
  steps: PlanStep[];
}

/**
 * How the analysis loop (proxy/cutover/analysis.ts) judges a step, and what
 * the autopilot (`strangler cutover run`) does with its verdicts. Every field is optional; a
 * step's value wins over its feature's, which wins over the plan's, which wins over ANALYSIS_DEFAULTS.
 *
 * @example
 *   { "interval_seconds": 10, "passes": 3, "failure_threshold": 2, "on_failure": "legacy", "after_soak": "rollback" }
 */
export interface AnalysisSpec {
  /** Seconds between two analysis runs of the current step's gates. */
  interval_seconds?: number;
  /** Passing runs in a row (counted after the soak) before the autopilot advances. */
  passes?: number;
  /** Failing runs in a row before the step is rolled back (during the soak, or under the autopilot) or alerted on. */
  failure_threshold?: number;
  /** Where a rollback goes: one step back, or straight to legacy. */
  on_failure?: OnFailure;
  /** After the soak, with no autopilot run on the feature, what a failure threshold does: alert only, or roll back. */
  after_soak?: AfterSoakPolicy;
}

export type OnFailure = 'previous' | 'legacy';
export type AfterSoakPolicy = 'alert' | 'rollback';

/** The analysis settings with every field filled in. */
export type ResolvedAnalysis = Required<AnalysisSpec>;

export const ANALYSIS_DEFAULTS: ResolvedAnalysis = { interval_seconds: 10, passes: 3, failure_threshold: 2, on_failure: 'previous', after_soak: 'alert' };

/** The analysis a step runs under: its own settings over its feature's over the plan's over the defaults. */
export function resolveAnalysis(plan: CutoverPlan, feature: string, step: PlanStep | undefined): ResolvedAnalysis {
  return { ...ANALYSIS_DEFAULTS, ...plan.analysis, ...planFeature(plan, feature)?.analysis, ...step?.analysis };
}

/** What a notify webhook is told about (a confirm webhook is asked before every step instead). */
export const NOTIFY_EVENTS = ['advance', 'rollback', 'auto-rollback', 'pause', 'resume', 'promote', 'gate-failure', 'drift', 'run-started', 'run-waiting', 'run-finished', 'run-stopped'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/**
 * An HTTP endpoint the admin calls. `confirm`: POSTed before any step is entered (by `advance`
 * or the autopilot); a non-2xx answer, or none within timeout_ms after its retries, blocks the step.
 * `notify`: POSTed after every change it subscribes to; retried with backoff, never blocking.
 * Bodies are signed: `X-Strangler-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
 * with the secret the admin was given under `secret` (never in the plan itself).
 */
export interface WebhookSpec {
  /** Unique among the plan's webhooks; the label of its delivery metrics. */
  name: string;
  type: 'confirm' | 'notify';
  url: string;
  /** The name of the signing secret (the admin reads it from STRANGLER_WEBHOOK_SECRET_<NAME> or its config); none: unsigned. */
  secret?: string;
  /** `json` (default): the event as JSON; `slack`: `{"text": …}` for a Slack-compatible incoming webhook. */
  format?: 'json' | 'slack';
  /** notify only: the events it is sent; default all. */
  events?: NotifyEvent[];
  /** Only these features' changes; default all. */
  features?: string[];
  /** Per attempt. Default 5000. */
  timeout_ms?: number;
  /** Attempts after the first (backoff 0.5 s, 1 s, 2 s, …). Default 3 for notify, 1 for confirm. */
  retries?: number;
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
  /** The autopilot stops once this step's analysis passes, until `strangler cutover promote <feature>`. */
  manual_judgement?: boolean;
  /** Overrides the feature's (and the plan's) analysis settings for this step. */
  analysis?: AnalysisSpec;
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

/** Bounds on one number: at least one of them. */
interface Bounds {
  max?: number;
  min?: number;
}

/**
 * A PromQL instant query against a Prometheus server (`service` names its base URL, whose
 * /api/v1/query is asked); the result's samples, combined by `aggregate`, must stay within min..max.
 * An empty result is no-data.
 */
export interface PrometheusGate extends GateBase, Bounds {
  kind: 'prometheus';
  /** e.g. `sum(rate(proxy_requests_total{target="new",status=~"5.."}[1m])) / sum(rate(proxy_requests_total{target="new"}[1m]))` */
  query: string;
  /** How to combine a vector result's samples. Default max. */
  aggregate?: 'sum' | 'max' | 'min' | 'avg';
}

/** Any endpoint answering JSON: GET `service`'s base URL + `path`, read the number at `json_path`. */
export interface WebGate extends GateBase, Bounds {
  kind: 'web';
  /** Path (and query) under the service's base URL, starting with `/`. */
  path: string;
  /** Where the number is: `data.queue.depth`, `items[0].value`; `$.` optional. A missing value is no-data. */
  json_path: string;
}

/** The database invariants, counted by the server while the step runs. */
export const INVARIANT_CHECKS = ['lost_events', 'duplicate_executions', 'overcommitted_hosts', 'orphan_droplets'] as const;
export type InvariantCheck = (typeof INVARIANT_CHECKS)[number];

/**
 * One database invariant (lib/invariants.ts), counted now through the admin's observer connection:
 * lost events (pending/running longer than `stuck_after_seconds`, or done without an execution),
 * double executions, over-committed hosts, droplets without a create event (older than
 * `stuck_after_seconds`). The count must stay <= max (default 0).
 */
export interface InvariantGate {
  kind: 'invariant';
  name?: string;
  /** Always `database` (the admin's observer connection); may be left out. */
  service?: 'database';
  description?: string;
  check: InvariantCheck;
  max?: number;
  /** In flight is not lost: only what is older than this counts. Default 120. */
  stuck_after_seconds?: number;
}

/**
 * The step's share of the database, read from the server itself: connections in PROCESSLIST and
 * SELECTs per second between two analysis runs (USER_STATISTICS per user where the server has it,
 * Com_select otherwise), both optionally only for `users`.
 */
export interface BudgetGate {
  kind: 'budget';
  name?: string;
  service?: 'database';
  description?: string;
  max_connections?: number;
  max_polling_queries_per_s?: number;
  /** MySQL users counted; default every user. */
  users?: string[];
}

export type Gate = ErrorRateGate | LatencyGate | ShadowMismatchGate | GaugeGate | PrometheusGate | WebGate | InvariantGate | BudgetGate;
export type GateKind = Gate['kind'];
export const GATE_KINDS: readonly GateKind[] = ['error_rate', 'latency', 'shadow_mismatch_rate', 'gauge', 'prometheus', 'web', 'invariant', 'budget'];
/** Gates read by scraping a service's /metrics (the built-in provider); the others ask their provider (proxy/cutover/providers.ts). */
export type ScrapeGate = ErrorRateGate | LatencyGate | ShadowMismatchGate | GaugeGate;
export function isScrapeGate(gate: Gate): gate is ScrapeGate {
  return gate.kind === 'error_rate' || gate.kind === 'latency' || gate.kind === 'shadow_mismatch_rate' || gate.kind === 'gauge';
}

/** The service a gate reads: its `service`, or `database` for invariant and budget gates. */
export function gateService(gate: Gate): string {
  return gate.service ?? 'database';
}

/** Soak longer than a week is a typo, not a plan. */
export const MAX_SOAK_SECONDS = 7 * 24 * 3600;
export const MAX_STEPS = 50;
export const MAX_GATES = 20;

const STEP_NAME = /^[a-z0-9][a-z0-9._+-]{0,63}$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const SERVICE = /^[a-z][a-z0-9_-]{0,31}$/;
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
  const base = `${gate.kind}:${gate.kind === 'invariant' ? gate.check : gateService(gate)}`;
  return all.filter((g) => !g.name && `${g.kind}:${g.kind === 'invariant' ? g.check : gateService(g)}` === base).length > 1 ? `${base}#${index + 1}` : base;
}

// ---------------------------------------------------------------------------
// Validation

function checkGate(c: Checker, path: string, value: unknown): void {
  const gate = c.object(path, value);
  if (!gate) return;
  const common = ['kind', 'name', 'service', 'description'];
  if (gate.name !== undefined) c.string(`${path}.name`, gate.name, GATE_NAME, 'letters, digits and . _ : + -, at most 64');
  c.optionalString(`${path}.description`, gate.description);
  if (checkExternalGate(c, path, gate)) return;
  c.string(`${path}.service`, gate.service, SERVICE, 'a service name such as "proxy" (lower-case, at most 32)');
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
  c.fields(path, step, ['name', 'mode', 'percent', 'regions', 'soak_seconds', 'gates', 'requires', 'manual_judgement', 'analysis', 'description']);
  if (step.manual_judgement !== undefined && typeof step.manual_judgement !== 'boolean') c.add(`${path}.manual_judgement`, `must be true or false, got ${quote(step.manual_judgement)}`);
  if (step.analysis !== undefined) checkAnalysis(c, `${path}.analysis`, step.analysis);
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
    c.fields('plan', plan, ['$schema', 'version', 'description', 'analysis', 'webhooks', 'features']);
    if (plan.analysis !== undefined) checkAnalysis(c, 'analysis', plan.analysis);
    const featureNames = typeof plan.features === 'object' && plan.features !== null ? Object.keys(plan.features) : [];
    if (plan.webhooks !== undefined) checkWebhooks(c, 'webhooks', plan.webhooks, featureNames);
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
        c.fields(path, feature, ['description', 'analysis', 'steps']);
        if (feature.analysis !== undefined) checkAnalysis(c, `${path}.analysis`, feature.analysis);
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
  for (const feature of Object.values(plan.features)) for (const step of feature?.steps ?? []) for (const g of step.gates) if (g.service !== undefined && g.kind !== 'invariant' && g.kind !== 'budget') names.add(g.service);
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
