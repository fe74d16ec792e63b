import { quote } from '../../lib/errors.ts';
import { INVARIANT_CHECKS, NOTIFY_EVENTS, SERVICE } from './plan.ts';
import { Checker, typeName } from './plan-checker.ts';

/**
 * Validation of the plan fields the autopilot reads (analysis settings, webhooks) and of the
 * gate kinds answered by providers other than the built-in scrape (prometheus, web, invariant,
 * budget). The types and their meaning are in plan.ts; this file only says what is valid.
 */

const AGGREGATES = ['sum', 'max', 'min', 'avg'];
const WEBHOOK_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const JSON_PATH = /^(\$\.?)?([A-Za-z_][A-Za-z0-9_-]*|\[\d{1,6}\])((\.[A-Za-z_][A-Za-z0-9_-]*)|(\[\d{1,6}\]))*$/;
const MYSQL_USER = /^[A-Za-z0-9_.-]{1,80}$/;

function bounds(c: Checker, path: string, gate: Record<string, unknown>, required: boolean): void {
  if (required && gate.max === undefined && gate.min === undefined) c.add(`${path}.max`, `a ${String(gate.kind)} gate needs max, min or both`);
  if (gate.max !== undefined) c.number(`${path}.max`, gate.max, -1e15, 1e15);
  if (gate.min !== undefined) c.number(`${path}.min`, gate.min, -1e15, 1e15);
  if (typeof gate.max === 'number' && typeof gate.min === 'number' && gate.min > gate.max) c.add(`${path}.min`, `is above max (${gate.max})`);
}

/**
 * Checks a gate of a provider-backed kind; false when the kind is not one of them
 * (the caller checks the scrape kinds, or reports an unknown kind).
 */
export function checkExternalGate(c: Checker, path: string, gate: Record<string, unknown>): boolean {
  const common = ['kind', 'name', 'service', 'description'];
  const service = () => c.string(`${path}.service`, gate.service, SERVICE, 'a service name such as "prometheus" (lower-case, at most 32)');
  switch (gate.kind) {
    case 'prometheus':
      c.fields(path, gate, [...common, 'query', 'aggregate', 'max', 'min']);
      service();
      if (c.string(`${path}.query`, gate.query, undefined, 'a PromQL expression') && (gate.query.trim() === '' || gate.query.length > 4000)) {
        c.add(`${path}.query`, 'must be a PromQL expression of 1 to 4000 characters');
      }
      if (gate.aggregate !== undefined && !AGGREGATES.includes(gate.aggregate as string)) c.add(`${path}.aggregate`, `must be one of ${AGGREGATES.join(', ')}, got ${quote(gate.aggregate)}`);
      bounds(c, path, gate, true);
      return true;
    case 'web':
      c.fields(path, gate, [...common, 'path', 'json_path', 'max', 'min']);
      service();
      c.string(`${path}.path`, gate.path, /^\/[\x21-\x7e]{0,2000}$/, 'a path under the service\'s URL, starting with "/"');
      c.string(`${path}.json_path`, gate.json_path, JSON_PATH, 'a path into the JSON answer such as "data.queue.depth" or "items[0].value"');
      bounds(c, path, gate, true);
      return true;
    case 'invariant':
      c.fields(path, gate, [...common, 'check', 'max', 'stuck_after_seconds']);
      if (gate.service !== undefined && gate.service !== 'database') c.add(`${path}.service`, `an invariant gate reads the database; leave service out or set "database", got ${quote(gate.service)}`);
      if (!(INVARIANT_CHECKS as readonly unknown[]).includes(gate.check)) c.add(`${path}.check`, `must be one of ${INVARIANT_CHECKS.join(', ')}, got ${quote(gate.check)}`);
      if (gate.max !== undefined) c.number(`${path}.max`, gate.max, 0, 1e12, { integer: true });
      if (gate.stuck_after_seconds !== undefined) c.number(`${path}.stuck_after_seconds`, gate.stuck_after_seconds, 1, 86_400, { integer: true });
      return true;
    case 'budget':
      c.fields(path, gate, [...common, 'max_connections', 'max_polling_queries_per_s', 'users']);
      if (gate.service !== undefined && gate.service !== 'database') c.add(`${path}.service`, `a budget gate reads the database; leave service out or set "database", got ${quote(gate.service)}`);
      if (gate.max_connections === undefined && gate.max_polling_queries_per_s === undefined) c.add(`${path}.max_connections`, 'a budget gate needs max_connections, max_polling_queries_per_s or both');
      if (gate.max_connections !== undefined) c.number(`${path}.max_connections`, gate.max_connections, 0, 1e7, { integer: true });
      if (gate.max_polling_queries_per_s !== undefined) c.number(`${path}.max_polling_queries_per_s`, gate.max_polling_queries_per_s, 0, 1e9);
      if (gate.users !== undefined) {
        if (!Array.isArray(gate.users) || gate.users.length === 0 || gate.users.length > 100) c.add(`${path}.users`, `must be a non-empty array of MySQL user names, got ${typeName(gate.users)}`);
        else gate.users.forEach((u, i) => c.string(`${path}.users[${i}]`, u, MYSQL_USER, 'a MySQL user name'));
      }
      return true;
    default:
      return false;
  }
}

/** `analysis` at plan, feature or step level. */
export function checkAnalysis(c: Checker, path: string, value: unknown): void {
  const a = c.object(path, value);
  if (!a) return;
  c.fields(path, a, ['interval_seconds', 'passes', 'failure_threshold', 'on_failure', 'after_soak']);
  if (a.interval_seconds !== undefined) c.number(`${path}.interval_seconds`, a.interval_seconds, 0.05, 3600);
  if (a.passes !== undefined) c.number(`${path}.passes`, a.passes, 1, 1000, { integer: true });
  if (a.failure_threshold !== undefined) c.number(`${path}.failure_threshold`, a.failure_threshold, 1, 1000, { integer: true });
  if (a.on_failure !== undefined && a.on_failure !== 'previous' && a.on_failure !== 'legacy') c.add(`${path}.on_failure`, `must be "previous" or "legacy", got ${quote(a.on_failure)}`);
  if (a.after_soak !== undefined && a.after_soak !== 'alert' && a.after_soak !== 'rollback') c.add(`${path}.after_soak`, `must be "alert" or "rollback", got ${quote(a.after_soak)}`);
}

/** The plan's `webhooks` list. */
export function checkWebhooks(c: Checker, path: string, value: unknown, features: readonly string[]): void {
  if (!Array.isArray(value) || value.length > 20) {
    c.add(path, `must be an array of at most 20 webhooks, got ${typeName(value)}`);
    return;
  }
  const names = new Map<string, number>();
  value.forEach((v, i) => {
    const p = `${path}[${i}]`;
    const hook = c.object(p, v);
    if (!hook) return;
    c.fields(p, hook, ['name', 'type', 'url', 'secret', 'format', 'events', 'features', 'timeout_ms', 'retries']);
    if (c.string(`${p}.name`, hook.name, WEBHOOK_NAME, 'lower-case letters, digits, _ and -, at most 32')) {
      if (names.has(hook.name)) c.add(`${p}.name`, `${quote(hook.name)} is also the name of ${path}[${names.get(hook.name)}]`);
      names.set(hook.name, i);
    }
    if (hook.type !== 'confirm' && hook.type !== 'notify') c.add(`${p}.type`, `must be "confirm" or "notify", got ${quote(hook.type)}`);
    if (c.string(`${p}.url`, hook.url, undefined, 'an http(s) URL')) {
      let ok = false;
      try {
        ok = ['http:', 'https:'].includes(new URL(hook.url).protocol);
      } catch {
        ok = false;
      }
      if (!ok) c.add(`${p}.url`, `${quote(hook.url)} is not an http(s) URL`);
    }
    if (hook.secret !== undefined) c.string(`${p}.secret`, hook.secret, WEBHOOK_NAME, 'the name of a secret given to the admin (STRANGLER_WEBHOOK_SECRET_<NAME>), not the secret itself');
    if (hook.format !== undefined && hook.format !== 'json' && hook.format !== 'slack') c.add(`${p}.format`, `must be "json" or "slack", got ${quote(hook.format)}`);
    if (hook.events !== undefined) {
      if (hook.type === 'confirm') c.add(`${p}.events`, 'a confirm webhook is asked before every step; events are for notify webhooks');
      else if (!Array.isArray(hook.events) || hook.events.length === 0) c.add(`${p}.events`, `must be a non-empty array of ${NOTIFY_EVENTS.join(', ')}`);
      else hook.events.forEach((e, j) => (NOTIFY_EVENTS as readonly unknown[]).includes(e) || c.add(`${p}.events[${j}]`, `must be one of ${NOTIFY_EVENTS.join(', ')}, got ${quote(e)}`));
    }
    if (hook.features !== undefined) {
      if (!Array.isArray(hook.features) || hook.features.length === 0) c.add(`${p}.features`, `must be a non-empty array of the plan's features (${features.join(', ')})`);
      else hook.features.forEach((f, j) => features.includes(f as string) || c.add(`${p}.features[${j}]`, `must be one of the plan's features (${features.join(', ')}), got ${quote(f)}`));
    }
    if (hook.timeout_ms !== undefined) c.number(`${p}.timeout_ms`, hook.timeout_ms, 10, 120_000, { integer: true });
    if (hook.retries !== undefined) c.number(`${p}.retries`, hook.retries, 0, 10, { integer: true });
  });
}
