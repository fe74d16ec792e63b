import { FEATURES, FEATURE_NAME } from '../../lib/cutover/types.ts';
import { StranglerError } from '../../lib/errors.ts';
import type { ChangeResult, FeatureStatus } from '../../proxy/cutover/controller.ts';
import type { GateReading } from '../../proxy/cutover/gates.ts';
import { gateName, gateService, loadPlanFile, type CutoverPlan, type Gate, type PlanStep } from '../../proxy/cutover/plan.ts';
import type { HistoryEntry } from '../../proxy/cutover/state-store.ts';
import type { ShadowSummary } from '../../proxy/cutover/shadow-summary.ts';
import type { AutopilotView } from '../../proxy/cutover/autopilot-view.ts';
import { followRuns, progressLine } from './cutover-follow.ts';
import { loadProxyConfigFile, type ProxyConfig } from '../../proxy/config.ts';
import { checkPlanServed } from '../../proxy/cutover/plan-served.ts';
import { EXIT, UsageError, intOption, parseCommandArgs, writeJson, type Command, reportInvalidFile, type CommandIO } from '../command.ts';
import { runPreflightLockdown } from './preflight-lockdown.ts';
import { runVerifyLockdown } from './verify-lockdown.ts';

const DEFAULT_URL = 'http://127.0.0.1:9400';

const COMMON = `Connection (every verb but "plan --file"):
  --url URL              The admin API (default: STRANGLER_ADMIN_URL, else ${DEFAULT_URL})
  --token TOKEN          An admin token (default: STRANGLER_ADMIN_TOKEN, which stays out of ps);
                         the token's name is recorded as the actor
  --json                 Print the API's JSON answer
  -h, --help             This text`;

const HELP = `Usage: strangler cutover <verb> [options]

Moves features from the legacy path to the new one, step by step, through
the cutover admin API. Every step soaks for a while and its gates (error
rate, p99 latency, shadow mismatch rate, backlog, MySQL connections, read
from the services' /metrics) must pass before "advance" leaves it; a gate
that fails during the soak rolls the feature back by itself.

Verbs:
  status                 Every feature: step, mode, canary, paused, soak left, last change;
                         Scheduler V2's shadow agreement with V1, by category of difference;
                         who holds which grants on the events table (lockdown)
  plan                   The plan the API runs (or check a local file with --file)
  advance <feature>      Check the current step's gates, then move to the next step
  rollback <feature>     Back to legacy at once (--to previous: one step back); never gated
  pause <feature>        Stop advances and the soak watcher for this feature
  resume <feature>       Undo pause
  history                The audit trail: who, when, what, why, gate readings
  run <feature> | --all  The autopilot: analysis every interval, advance after N passing runs
                         and the soak, stop at manual-judgement steps, roll back on failures;
                         it runs in the admin, this follows it with a line per change
  promote <feature>      Let a run waiting at a manual-judgement step go on
  stop <feature>         End the feature's autopilot run (the feature stays where it is)
  verify-lockdown        Log in as every service user and try each event-data table (MySQL,
                         not the API); exit 0 only when Harpoon alone may touch event data
  preflight-lockdown     Watch who touches event data for a few seconds (MySQL); exit 0 only
                         when no one lockdown would cut off does

Features: the plan's ("strangler cutover plan" lists them); this system's are
${FEATURES.join(', ')}

${COMMON}

Exit codes: 0 done; 1 failed (401: bad or missing token; API unreachable);
2 bad usage (unknown feature or option); 3 refused (a gate failed, the soak
is not over, paused, last step, or a concurrent change won).

Example:
  export STRANGLER_ADMIN_TOKEN=…
  strangler cutover status
  strangler cutover advance event-delivery --reason "nyc1 canary looks clean"
  strangler cutover rollback event-delivery --to previous --reason "p99 up"
  strangler cutover history --feature event-delivery --json

Run "strangler cutover <verb> --help" for a verb's options.
`;

interface VerbSpec {
  usage: string;
  about: string;
  options: Record<string, { type: 'string' | 'boolean' }>;
  optionsHelp: string[];
  feature: boolean;
  example: string;
}

const REASON = { reason: { type: 'string' as const } };
const REASON_HELP = '  --reason TEXT          Why, for the history (at most 500 characters)';

const VERBS: Record<string, VerbSpec> = {
  status: {
    usage: 'status',
    about: 'Shows every feature: step n/N and its name, routing mode, canary percent and regions, paused, soak time left, last change.',
    options: {},
    optionsHelp: [],
    feature: false,
    example: 'strangler cutover status --json',
  },
  plan: {
    usage: 'plan [--file PLAN.json [--config PROXY.json]]',
    about:
      'Shows the plan the admin API runs: each feature\'s steps, their soak and gates.\nWith --file, checks a local plan file instead (no API call) and names every bad field (exit 2).\nWith --config too, also checks every gate against the services the config names: each\nscrape gate\'s metric is served on its service\'s /metrics, each Prometheus gate\'s query\nreturns data, each web gate\'s path answers a value (exit 2 naming the gate\'s JSON path).',
    options: { file: { type: 'string' }, config: { type: 'string' } },
    optionsHelp: ['  --file PATH            Validate this plan file locally', '  --config PATH          And check its gates against the proxy config\'s "services"'],
    feature: false,
    example: 'strangler cutover plan --file proxy/cutover/default-plan.json',
  },
  advance: {
    usage: 'advance <feature> [--reason TEXT] [--override-preflight]',
    about:
      'Checks the gates of the feature\'s current step over its soak window (the soak must be over),\nthen moves it to the next step. Refused (exit 3) with the failing gate readings otherwise;\nthe refusal is recorded in the history as "advance-refused". Lockdown\'s step first watches who\ntouches event data (preflight-lockdown) and refuses while anyone but Harpoon does.',
    options: { ...REASON, 'override-preflight': { type: 'boolean' as const } },
    optionsHelp: [REASON_HELP, '  --override-preflight   Go on although the preflight names users (recorded in the history)'],
    feature: true,
    example: 'strangler cutover advance event-delivery --reason "nyc1 is clean"',
  },
  rollback: {
    usage: 'rollback <feature> [--to legacy|previous] [--reason TEXT]',
    about: 'Moves the feature back at once, without checking any gate: to legacy (the default) or one step back.',
    options: { to: { type: 'string' }, ...REASON },
    optionsHelp: ['  --to legacy|previous   Where to (default legacy)', REASON_HELP],
    feature: true,
    example: 'strangler cutover rollback event-delivery --to previous --reason "backlog growing"',
  },
  pause: {
    usage: 'pause <feature> [--reason TEXT]',
    about: 'Pauses the feature: advance is refused and the soak watcher leaves it alone. Rollback still works.',
    options: REASON,
    optionsHelp: [REASON_HELP],
    feature: true,
    example: 'strangler cutover pause scheduling --reason "change freeze"',
  },
  resume: {
    usage: 'resume <feature> [--reason TEXT]',
    about: 'Resumes a paused feature.',
    options: REASON,
    optionsHelp: [REASON_HELP],
    feature: true,
    example: 'strangler cutover resume scheduling',
  },
  run: {
    usage: 'run <feature> | run --all [--reason TEXT] [--detach]',
    about:
      'Starts the autopilot on the feature (or on every feature in plan order with --all) in the admin:\n' +
      'the current step\'s gates are analysed every interval; once the soak is over and they passed the\n' +
      'plan\'s `passes` runs in a row, the feature advances (after the plan\'s confirm webhooks); a step\n' +
      'marked manual_judgement waits for "promote"; `failure_threshold` failing runs in a row roll it back\n' +
      '(on_failure: previous step or legacy). "No data" never advances and never rolls back.\n' +
      'Then follows the run with a line per change (a JSON line each with --json) until it is done\n' +
      '(exit 0), rolled back or stopped (exit 3). Ctrl-C stops following; the run goes on.',
    options: { all: { type: 'boolean' }, detach: { type: 'boolean' }, ...REASON },
    optionsHelp: ['  --all                  Every feature of the plan, in plan order', '  --detach               Start the run and return', REASON_HELP],
    feature: false,
    example: 'strangler cutover run event-delivery --reason "friday window"',
  },
  promote: {
    usage: 'promote <feature> [--reason TEXT]',
    about: 'Approves leaving the manual-judgement step an autopilot run waits at; the run advances after its next passing analysis.',
    options: REASON,
    optionsHelp: [REASON_HELP],
    feature: true,
    example: 'strangler cutover promote scheduling --reason "shadow diffs reviewed"',
  },
  stop: {
    usage: 'stop <feature> [--reason TEXT]',
    about: 'Ends the feature\'s autopilot run; the feature stays at its step (continuous analysis goes on).',
    options: REASON,
    optionsHelp: [REASON_HELP],
    feature: true,
    example: 'strangler cutover stop event-writes --reason "holding for the weekend"',
  },
  history: {
    usage: 'history [--feature F] [--limit N]',
    about: 'The audit trail, newest first: who did what to which feature, when, why, and the gate readings it was decided on.',
    options: { feature: { type: 'string' }, limit: { type: 'string' } },
    optionsHelp: ['  --feature F            Only this feature', '  --limit N              At most N entries (default 20, at most 1000)'],
    feature: false,
    example: 'strangler cutover history --feature event-delivery --limit 5',
  },
};

function verbHelp(spec: VerbSpec): string {
  return [
    `Usage: strangler cutover ${spec.usage} [--url URL] [--token TOKEN] [--json]`,
    '',
    spec.about,
    '',
    ...(spec.feature ? [`Features: the plan's (this system's: ${FEATURES.join(', ')})`, ''] : []),
    ...(spec.optionsHelp.length ? ['Options:', ...spec.optionsHelp, ''] : []),
    COMMON,
    '',
    'Example:',
    `  ${spec.example}`,
    '',
  ].join('\n');
}

const CONNECTION = { url: { type: 'string' as const }, token: { type: 'string' as const } };

/** Codes that mean "the API said no to this, for a reason you can act on" (exit 3). */
const REFUSED = new Set(['HARPOON_ERR_LOCKDOWN_PREFLIGHT', 'CUTOVER_ERR_GATE_FAILED', 'CUTOVER_ERR_SOAKING', 'CUTOVER_ERR_PAUSED', 'CUTOVER_ERR_LAST_STEP', 'CUTOVER_ERR_CONFLICT', 'CUTOVER_ERR_PLAN_MISMATCH', 'CUTOVER_ERR_CONFIRM_BLOCKED', 'CUTOVER_ERR_NOT_WAITING', 'CUTOVER_ERR_NO_RUN']);

interface ApiError {
  code: string;
  message: string;
  readings?: GateReading[];
  [key: string]: unknown;
}

class ApiRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.message);
  }
}

function adminUrl(value: string | undefined, env: NodeJS.ProcessEnv): URL {
  const raw = value ?? env.STRANGLER_ADMIN_URL ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url must be an http(s) URL such as ${DEFAULT_URL}, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL such as ${DEFAULT_URL}, got "${raw}"`);
  return url;
}

async function callApi(io: CommandIO, base: URL, token: string | undefined, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = new URL(path, base.href.endsWith('/') ? base : `${base.href}/`);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.any([io.signal, AbortSignal.timeout(60_000)]),
    });
  } catch (cause) {
    const why = (cause as Error & { cause?: Error }).cause?.message ?? (cause as Error).message;
    throw new StranglerError('CUTOVER_ERR_UNREACHABLE', `the cutover admin API at ${base.origin} did not answer (${why}); check --url or STRANGLER_ADMIN_URL`, { cause });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StranglerError('CUTOVER_ERR_BAD_RESPONSE', `${method} ${url.pathname} answered ${res.status} with a body that is not JSON; is ${base.origin} the cutover admin API?`);
  }
  if (res.ok) return json;
  const err = json as ApiError;
  if (typeof err?.code !== 'string') throw new StranglerError('CUTOVER_ERR_BAD_RESPONSE', `${method} ${url.pathname} answered ${res.status} without an error code`);
  throw new ApiRefusal(res.status, err);
}

// ---------------------------------------------------------------------------
// Human output

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function routing(s: Pick<FeatureStatus, 'mode' | 'percent' | 'regions'>): { percent: string; regions: string } {
  return {
    percent: s.mode === 'canary' ? `${s.percent}%` : s.mode === 'full' ? '100%' : '0%',
    regions: s.mode === 'canary' ? (s.regions ? s.regions.join(',') : 'all') : s.mode === 'full' ? 'all' : '-',
  };
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function statusTable(features: FeatureStatus[]): string {
  const rows = [['FEATURE', 'STEP', 'MODE', 'PERCENT', 'REGIONS', 'PAUSED', 'SOAK', 'LAST CHANGE']];
  for (const f of features) {
    const r = routing(f);
    const soak = f.step === 0 ? '-' : f.soak_remaining_seconds > 0 ? `${f.soak_remaining_seconds}s left` : 'done';
    const last = f.last_change ? `${f.last_change.action} by ${f.last_change.actor} ${ago(f.last_change.at)}` : '-';
    rows.push([f.feature, `${f.step}/${f.steps} ${f.step_name}`, f.mode, r.percent, clip(r.regions, 40), f.paused ? 'yes' : 'no', soak, last]);
  }
  const warnings = features.filter((f) => f.plan_mismatch).map((f) => `warning: ${f.feature}: ${f.plan_mismatch}\n`);
  return table(rows) + warnings.join('');
}

/** One line per feature whose new side judges the legacy side in shadow (Scheduler V2): agreement and its categories. */
function shadowLines(shadow: Record<string, ShadowSummary>): string {
  return Object.entries(shadow)
    .map(([feature, s]) => {
      const who = `${s.service}, ${s.instances} instance${s.instances === 1 ? '' : 's'}`;
      if (s.error) return `${feature} shadow (${s.service}): unavailable: ${s.error}\n`;
      if (s.agreement_ratio === null) return `${feature} shadow (${who}): no decisions judged yet\n`;
      const diffs = Object.entries(s.by_category).map(([c, n]) => `${c} ${n}`).join(', ');
      const agreed = Object.entries(s.agree_by_category ?? {}).map(([c, n]) => `${c} ${n}`).join(', ');
      return `${feature} shadow (${who}): ${(s.agreement_ratio * 100).toFixed(1)}% agree (${s.agree}/${s.judged}${agreed ? `, of which ${agreed}` : ''})${diffs ? `; differences: ${diffs}` : ''}\n`;
    })
    .join('');
}

/** Cloud's outbox (cloud/outbox.ts readOutboxHealth): parked rows are events customers were answered for that will not reach Harpoon. */
function outboxLine(effects: Record<string, unknown>): string {
  const outbox = effects.outbox as { pending?: number; parked?: number; oldest_pending_seconds?: number; error?: string } | undefined;
  if (!outbox) return '';
  if (outbox.error) return `outbox: unavailable: ${outbox.error}\n`;
  const parked = outbox.parked
    ? `OUTBOX PARKED: ${outbox.parked} row${outbox.parked === 1 ? '' : 's'} cannot be relayed to Harpoon (runbooks/errors.md: CLOUD_ERR_OUTBOX_PARKED)\n`
    : '';
  return `${parked}outbox: ${outbox.pending ?? 0} to relay (oldest ${Math.round(outbox.oldest_pending_seconds ?? 0)}s), ${outbox.parked ?? 0} parked\n`;
}

/** Lockdown's view of the server: every account holding a privilege on events, and whether Harpoon's access is sole. */
function effectLines(effects: Record<string, unknown>): string {
  return lockdownLines(effects) + outboxLine(effects);
}

function lockdownLines(effects: Record<string, unknown>): string {
  const lockdown = effects.lockdown as
    | { grants_on_events?: Record<string, string[]>; sole_access?: boolean; others_with_access?: string[]; drift?: string[]; error?: string; preflight?: { at: string; ok: boolean; overridden: boolean; offenders: string[] } }
    | undefined;
  if (!lockdown) return '';
  if (lockdown.error) return `grants on events: unavailable: ${lockdown.error}\n`;
  const lines = Object.entries(lockdown.grants_on_events ?? {}).map(([grantee, privileges]) => `  ${grantee}: ${privileges.join(', ')}\n`);
  const verdict = lockdown.sole_access ? 'only Harpoon (and administrators) may touch events' : `also held by ${lockdown.others_with_access?.join(', ')}`;
  const drift = lockdown.drift?.length
    ? `LOCKDOWN DRIFT: the cutover state says lockdown holds, but ${lockdown.drift.join('; ')} (runbooks/security.md: drift)\n`
    : '';
  const p = lockdown.preflight;
  const preflight = p ? `lockdown preflight (${p.at}): ${p.ok ? 'only Harpoon seen at event data' : `${p.overridden ? 'OVERRIDDEN, ' : ''}still touching: ${p.offenders.join('; ')}`}\n` : '';
  return `${drift}grants on event data (${verdict}):\n${lines.join('')}${preflight}`;
}

/** The analysis of every feature past legacy, and every autopilot run: where it stands and why it waits. */
function autopilotLines(views: AutopilotView[]): string {
  const shown = views.filter((v) => v.step > 0 || v.run === 'running' || v.run === 'waiting');
  return shown.length ? `analysis and autopilot:\n${shown.map((v) => `  ${progressLine(v).slice(9)}`).join('')}` : '';
}

function readingsTable(readings: GateReading[]): string {
  if (readings.length === 0) return '  (no gates)\n';
  return table([
    ['  GATE', 'VERDICT', 'KIND', 'SERVICE', 'READING'],
    ...readings.map((r) => [`  ${r.gate}`, r.verdict.toUpperCase(), r.kind, r.service, r.message]),
  ]);
}

function describeGate(g: Gate, i: number, all: readonly Gate[]): string {
  const name = gateName(g, i, all);
  switch (g.kind) {
    case 'error_rate':
      return `${name}: error rate <= ${g.max * 100}% (${g.errors} / ${g.total})`;
    case 'shadow_mismatch_rate':
      return `${name}: shadow mismatches <= ${g.max * 100}% (${g.mismatches} / ${g.total})`;
    case 'latency':
      return `${name}: p${(g.quantile ?? 0.99) * 100} of ${g.histogram} <= ${g.max_seconds * 1000} ms`;
    case 'gauge':
      return `${name}: ${g.aggregate ?? 'sum'} of ${g.metric}${bounds(g)}`;
    case 'prometheus':
      return `${name}: ${g.aggregate ?? 'max'} of PromQL ${g.query}${bounds(g)}`;
    case 'web':
      return `${name}: ${g.json_path} of GET ${g.path}${bounds(g)}`;
    case 'invariant':
      return `${name}: ${g.check} <= ${g.max ?? 0}`;
    case 'budget':
      return `${name}: ${[g.max_connections !== undefined ? `connections <= ${g.max_connections}` : '', g.max_polling_queries_per_s !== undefined ? `SELECTs/s <= ${g.max_polling_queries_per_s}` : ''].filter(Boolean).join(', ')}${g.users ? ` (users ${g.users.join(', ')})` : ''}`;
  }
}

function bounds(g: { min?: number; max?: number }): string {
  return `${g.min !== undefined ? ` >= ${g.min}` : ''}${g.max !== undefined ? ` <= ${g.max}` : ''}`;
}

function describeStep(s: PlanStep): string {
  if (s.mode === 'canary') return `canary ${s.percent ?? 100}%${s.regions ? ` of ${s.regions.join(',')}` : ''}`;
  return s.mode;
}

function planText(plan: CutoverPlan, missing: string[] = []): string {
  const out: string[] = [];
  for (const [feature, spec] of Object.entries(plan.features)) {
    if (!spec) continue;
    out.push(`${feature} (${spec.steps.length} steps after legacy)`);
    spec.steps.forEach((s, i) => {
      out.push(`  ${i + 1}. ${s.name}: ${describeStep(s)}, soak ${s.soak_seconds}s`);
      s.gates.forEach((g, j, all) => out.push(`       gate ${describeGate(g, j, all)} [${gateService(g)}]`));
    });
  }
  if (missing.length) out.push(`warning: no /metrics URL configured for: ${missing.join(', ')} (their gates read "error")`);
  return out.join('\n') + '\n';
}

function historyTable(entries: HistoryEntry[]): string {
  if (entries.length === 0) return 'no history yet\n';
  const rows = [['ID', 'AT', 'FEATURE', 'ACTION', 'STEP', 'ACTOR', 'REASON']];
  const notes = new Map<number, string[]>();
  for (const e of entries) {
    rows.push([String(e.id), e.at, e.feature, e.action, e.from_step === e.to_step ? String(e.from_step) : `${e.from_step}->${e.to_step}`, e.actor, clip(e.reason ?? '', 60)]);
    const bad = (e.readings ?? []).filter((r) => r.verdict !== 'pass');
    if (bad.length) notes.set(e.id, bad.map((r) => `    ${r.gate} ${r.verdict}: ${r.message}`));
  }
  // Table first, then the readings behind refusals and automatic rollbacks.
  let text = table(rows);
  for (const [id, lines] of notes) text += `#${id} readings:\n${lines.join('\n')}\n`;
  return text;
}

function changeText(result: ChangeResult, verb: string): string {
  const s = result.status;
  const r = routing(s);
  if (!result.changed) return `${s.feature}: nothing to ${verb} (step ${s.step}/${s.steps} ${s.step_name}${s.paused ? ', paused' : ''})\n`;
  const where = `step ${s.step}/${s.steps} ${s.step_name} (${s.mode}, ${r.percent}, regions ${r.regions})`;
  const lines = [
    verb === 'advance'
      ? `${s.feature}: advanced to ${where}; soak ${s.soak_seconds}s`
      : verb === 'rollback'
        ? `${s.feature}: rolled back to ${where}`
        : `${s.feature}: ${verb}d at ${where}`,
  ];
  if (verb === 'advance' && result.readings.length) lines.push('gates of the step it left:', readingsTable(result.readings).trimEnd());
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------

/** `plan --file [--config]`: the file's own validity, then (with a config) whether its gates can read what they name. */
async function checkPlanFile(io: CommandIO, file: string, configFile: string | undefined, json: boolean): Promise<number> {
  let plan: CutoverPlan;
  try {
    plan = loadPlanFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--file ${file}: no such file`);
    if (err instanceof StranglerError && err.code === 'CUTOVER_ERR_INVALID_PLAN') return reportInvalidFile(io, json, 'cutover plan', file, err);
    throw err;
  }
  if (configFile !== undefined) {
    let config: ProxyConfig;
    try {
      config = loadProxyConfigFile(configFile);
    } catch (err) {
      if (err instanceof StranglerError && err.code === 'PROXY_ERR_INVALID_CONFIG') return reportInvalidFile(io, json, 'proxy config', configFile, err);
      throw err;
    }
    const problems = await checkPlanServed(plan, config.services ?? {});
    if (problems.length > 0) {
      const err = Object.assign(new StranglerError('CUTOVER_ERR_GATE_NOT_SERVED', `${problems.length} gate(s) read what their service does not serve`), { details: { errors: problems } });
      return reportInvalidFile(io, json, `plan for the services in ${configFile}`, file, err);
    }
  }
  if (json) writeJson(io, { valid: true, plan, ...(configFile !== undefined ? { served: true } : {}) });
  else io.stdout.write(`${file} is a valid plan${configFile !== undefined ? `, and every gate reads what its service serves (${configFile})` : ''}.\n\n${planText(plan)}`);
  return EXIT.ok;
}

export const command: Command = {
  name: 'cutover',
  summary: 'status, plan, advance, rollback, pause, resume, history of the staged cutover',
  help: HELP,
  async run(argv, io) {
    const [verb, ...rest] = argv;
    if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
      io.stdout.write(HELP);
      return verb === undefined ? EXIT.usage : EXIT.ok;
    }
    if (verb === '--json') throw new UsageError('name a verb first: strangler cutover status --json');
    if (verb === 'verify-lockdown') return runVerifyLockdown(rest, io);
    if (verb === 'preflight-lockdown') return runPreflightLockdown(rest, io);
    const spec = VERBS[verb];
    if (!spec) throw new UsageError(`unknown verb "${verb}"; the verbs are ${Object.keys(VERBS).join(', ')}`);
    const { values, positionals } = parseCommandArgs(rest, { ...CONNECTION, ...spec.options });
    if (values.help) {
      io.stdout.write(verbHelp(spec));
      return EXIT.ok;
    }
    const json = Boolean(values.json);
    const opt = (name: string) => (values as Record<string, string | boolean | undefined>)[name] as string | undefined;
    const flag = (name: string) => (values as Record<string, string | boolean | undefined>)[name] === true;

    let feature: string | undefined;
    if (spec.feature) {
      if (positionals.length !== 1) throw new UsageError(`${verb} takes exactly one feature, as the plan names it (this system's: ${FEATURES.join(', ')})`);
      feature = positionals[0]!;
    } else if (verb === 'run') {
      if (flag('all') ? positionals.length !== 0 : positionals.length !== 1) throw new UsageError(`run takes one feature (${FEATURES.join(', ')}) or --all`);
      feature = positionals[0];
    } else if (positionals.length > 0) {
      throw new UsageError(`${verb} takes no arguments, got "${positionals[0]}"`);
    }
    const featureOption = verb === 'history' ? opt('feature') : undefined;
    for (const f of [feature, featureOption]) {
      // The admin API knows the plan's features and answers 404 for any other; a name no plan can hold is refused here.
      if (f !== undefined && !FEATURE_NAME.test(f)) throw new UsageError(`"${f}" is not a feature name (lower-case letters, digits, . _ and -, at most 64)`);
    }
    const to = opt('to');
    if (to !== undefined && to !== 'legacy' && to !== 'previous') throw new UsageError(`--to must be legacy or previous, got "${to}"`);
    const reason = opt('reason');
    if (reason !== undefined && reason.length > 500) throw new UsageError(`--reason must be at most 500 characters, got ${reason.length}`);
    const limit = verb === 'history' ? intOption('limit', opt('limit'), 20, 1, 1000) : undefined;

    if (verb === 'plan' && opt('config') !== undefined && opt('file') === undefined) throw new UsageError('--config checks a plan file: give --file PLAN.json too');
    if (verb === 'plan' && opt('file') !== undefined) return checkPlanFile(io, opt('file')!, opt('config'), json);

    const base = adminUrl(opt('url'), io.env);
    const token = opt('token') ?? io.env.STRANGLER_ADMIN_TOKEN;
    const path = (p: string) => `cutover/${p}`;
    try {
      switch (verb) {
        case 'status': {
          const res = (await callApi(io, base, token, 'GET', path('status'))) as { features: FeatureStatus[]; shadow?: Record<string, ShadowSummary>; effects?: Record<string, unknown>; autopilot?: AutopilotView[] };
          if (json) writeJson(io, res);
          else io.stdout.write(statusTable(res.features) + shadowLines(res.shadow ?? {}) + effectLines(res.effects ?? {}) + autopilotLines(res.autopilot ?? []));
          return EXIT.ok;
        }
        case 'plan': {
          const res = (await callApi(io, base, token, 'GET', path('plan'))) as { plan: CutoverPlan; missing_services: string[] };
          if (json) writeJson(io, res);
          else io.stdout.write(planText(res.plan, res.missing_services));
          return EXIT.ok;
        }
        case 'history': {
          const q = new URLSearchParams({ limit: String(limit) });
          if (featureOption) q.set('feature', featureOption);
          const res = (await callApi(io, base, token, 'GET', path(`history?${q}`))) as { entries: HistoryEntry[] };
          if (json) writeJson(io, res);
          else io.stdout.write(historyTable(res.entries));
          return EXIT.ok;
        }
        case 'run': {
          const body = reason !== undefined ? { reason } : {};
          const started = flag('all')
            ? ((await callApi(io, base, token, 'POST', path('run-all'), body)) as { features: AutopilotView[] }).features
            : [(await callApi(io, base, token, 'POST', path(`${encodeURIComponent(feature!)}/run`), body)) as AutopilotView];
          if (flag('detach')) {
            if (json) writeJson(io, { features: started });
            else for (const v of started.filter((x) => x.run === 'running' || x.run === 'waiting')) io.stdout.write(`${v.feature}: autopilot run started at step ${v.step}/${v.steps} ${v.step_name}\n`);
            return EXIT.ok;
          }
          const views = async () => ((await callApi(io, base, token, 'GET', path('autopilot'))) as { features: AutopilotView[] }).features;
          return await followRuns(io, views, { features: flag('all') ? 'all' : [feature!], json });
        }
        default: {
          const body: Record<string, unknown> = {};
          if (reason !== undefined) body.reason = reason;
          if (verb === 'rollback' && to !== undefined) body.to = to;
          if (flag('override-preflight')) body.override_preflight = true;
          const res = (await callApi(io, base, token, 'POST', path(`${encodeURIComponent(feature!)}/${verb}`), body)) as ChangeResult;
          if (json) writeJson(io, res);
          else if (verb === 'promote' || verb === 'stop') io.stdout.write(progressLine(res as unknown as AutopilotView));
          else io.stdout.write(changeText(res, verb));
          return EXIT.ok;
        }
      }
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      const { status, body } = err;
      if (json) writeJson(io, { status, ...body });
      if (status === 401) {
        if (!json) {
          io.stderr.write(
            `strangler cutover ${verb}: ${body.code}: not authorized by the admin API at ${base.origin}: ${body.message}.\n` +
              `${token ? 'The token was refused' : 'No token was given'}: pass --token or set STRANGLER_ADMIN_TOKEN.\n`,
          );
        }
        return EXIT.failed;
      }
      if (!json) {
        io.stderr.write(`strangler cutover ${verb}: ${body.code}: ${body.message}\n`);
        if (Array.isArray(body.readings)) {
          const failing = body.readings.filter((r) => r.verdict !== 'pass');
          io.stderr.write(`gate readings (${failing.length} of ${body.readings.length} not passing):\n${readingsTable(body.readings)}`);
        }
      }
      if (REFUSED.has(body.code)) return EXIT.precondition;
      if (body.code === 'CUTOVER_ERR_UNKNOWN_FEATURE' || body.code === 'CUTOVER_ERR_VALIDATION') return EXIT.usage;
      return EXIT.failed;
    }
  },
};
