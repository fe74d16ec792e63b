import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { FEATURE_NAME } from '../lib/cutover/types.ts';
import { InvalidOptionError, StranglerError, quote } from '../lib/errors.ts';
import { Checker as JsonChecker } from './cutover/plan-checker.ts';
import { createProxy, type ProxyOptions } from './create-proxy.ts';
import type { RouteTable } from './route-table.ts';
import type { StaticStates } from './static-state.ts';
import type { HealthCheckOptions } from './upstreams.ts';

/**
 * Where the proxy reads each feature's cutover state:
 * - `admin`: the cutover admin's GET /cutover/state over HTTP (a `read`-scope token from the
 *   environment variable `tokenEnv`, STRANGLER_STATE_TOKEN by default): no database needed;
 * - `mysql`: the `cutover_features` table, with a mysql:// URL from `urlEnv` (PROXY_MYSQL_URL by default);
 * - `static`: fixed routings, no cutover (a fixed split, or a test).
 */
export type ProxyStateConfig =
  | { admin: { url: string; tokenEnv?: string; intervalMs?: number } }
  | { mysql: { urlEnv?: string; intervalMs?: number } }
  | { static: StaticStates };

/**
 * The proxy's config file (`strangler proxy --config FILE`, `strangler serve
 * proxy`): features → routes → legacy and new targets, plus where the
 * cutover state comes from and the `/metrics` URL of every service the
 * plan's gates read. Secrets never sit in it: tokens and database URLs are
 * named by environment variable. The JSON Schema for editors is
 * schemas/proxy-config.schema.json; validateProxyConfig is the authority.
 *
 * @example
 *   {
 *     "version": 1,
 *     "listen": { "host": "0.0.0.0", "port": 8000 },
 *     "state": { "admin": { "url": "http://admin.internal:9400" } },
 *     "features": {
 *       "catalog": {
 *         "legacy": { "urls": ["http://10.0.0.5:8080"], "healthPath": "/status" },
 *         "new": ["http://10.0.0.9:3000"],
 *         "routes": [{ "method": "GET", "path": "/catalog/:sku", "stickyBy": { "header": "x-customer-id" } }],
 *         "compare": { "ignore": ["*.served_at"] }
 *       }
 *     },
 *     "services": { "proxy": "http://proxy.internal:9101", "catalog-new": ["http://10.0.0.9:3000"] }
 *   }
 */
export interface ProxyConfig {
  version: 1;
  description?: string;
  listen?: { host?: string; port?: number };
  /** Worker processes sharing the port (default 1); see workersForStreams. */
  workers?: number;
  /**
   * The proxy's admin port, served by the primary: every worker's proxy_* metrics aggregated on /metrics (what the
   * gates read), and, with the token from `tokenEnv` (STRANGLER_ADMIN_TOKEN by default), /admin/shadow/samples
   * (the latest shadow differences) and /admin/upstreams.
   */
  admin?: { host?: string; port: number; tokenEnv?: string };
  state: ProxyStateConfig;
  healthCheck?: Partial<HealthCheckOptions>;
  bodyLimit?: number;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
  drainTimeoutMs?: number;
  maxClientConnections?: number;
  xForwarded?: boolean;
  shadow?: ProxyOptions['shadow'];
  features: RouteTable;
  /** Gate service name → base URL(s) whose /metrics the cutover admin scrapes. */
  services?: Record<string, string | string[]>;
}

const TOP_FIELDS = [
  '$schema',
  'version',
  'description',
  'listen',
  'workers',
  'admin',
  'state',
  'healthCheck',
  'bodyLimit',
  'connectTimeoutMs',
  'responseTimeoutMs',
  'drainTimeoutMs',
  'maxClientConnections',
  'xForwarded',
  'shadow',
  'features',
  'services',
] as const;
/** Fields handed to createProxy as they are (it checks them, naming the option). */
const PROXY_FIELDS = ['healthCheck', 'bodyLimit', 'connectTimeoutMs', 'responseTimeoutMs', 'drainTimeoutMs', 'maxClientConnections', 'xForwarded', 'shadow'] as const;
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const SERVICE = /^[a-z][a-z0-9_-]{0,31}$/;
const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;
const MODES = ['legacy', 'shadow', 'canary', 'full'];

function httpUrl(c: JsonChecker, path: string, value: unknown): void {
  let ok = false;
  try {
    const u = typeof value === 'string' ? new URL(value) : undefined;
    ok = u !== undefined && (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
  } catch {
    ok = false;
  }
  if (!ok) c.add(path, `must be an http:// URL without user:password, such as "http://10.0.0.5:9100", got ${quote(value)}`);
}

function checkPort(c: JsonChecker, path: string, value: unknown): void {
  if (value !== undefined) c.number(path, value, 0, 65535, { integer: true });
}

function checkState(c: JsonChecker, value: unknown): void {
  const state = c.object('state', value);
  if (!state) return;
  const kinds = Object.keys(state);
  if (kinds.length !== 1 || !['admin', 'mysql', 'static'].includes(kinds[0]!)) {
    c.add('state', `must have exactly one of admin, mysql, static, got ${quote(kinds)}`);
    return;
  }
  const kind = kinds[0]!;
  const path = `state.${kind}`;
  const body = c.object(path, state[kind]);
  if (!body) return;
  if (kind === 'static') {
    for (const [feature, routing] of Object.entries(body)) {
      const r = c.object(`${path}.${feature}`, routing);
      if (!r) continue;
      c.fields(`${path}.${feature}`, r, ['mode', 'percent', 'regions']);
      if (!MODES.includes(r.mode as string)) c.add(`${path}.${feature}.mode`, `must be one of ${MODES.join(', ')}, got ${quote(r.mode)}`);
      if (r.percent !== undefined) c.number(`${path}.${feature}.percent`, r.percent, 0, 100);
    }
    return;
  }
  const envField = kind === 'admin' ? 'tokenEnv' : 'urlEnv';
  c.fields(path, body, kind === 'admin' ? ['url', 'tokenEnv', 'intervalMs'] : ['urlEnv', 'intervalMs']);
  if (kind === 'admin') httpUrl(c, `${path}.url`, body.url);
  if (body[envField] !== undefined) c.string(`${path}.${envField}`, body[envField], ENV_NAME, 'an environment variable name such as STRANGLER_STATE_TOKEN');
  if (body.intervalMs !== undefined) c.number(`${path}.intervalMs`, body.intervalMs, 10, 600_000, { integer: true });
}

/** The route table and proxy options, checked by createProxy itself (one implementation), restated as a config path. */
function checkProxyOptions(c: JsonChecker, config: Record<string, unknown>): void {
  try {
    createProxy({ ...proxyOptionsOf(config as unknown as ProxyConfig), state: { get: () => undefined }, registry: new Registry() });
  } catch (err) {
    if (!(err instanceof InvalidOptionError)) throw err;
    const path = err.option.replace(/^routes\b/, 'features');
    c.add(path, `must be ${err.expected}, got ${quote(err.value)}`);
  }
}

/**
 * Checks a parsed config and returns it typed; every structural problem is
 * reported at once, each naming its JSON path and the bad value, in one
 * PROXY_ERR_INVALID_CONFIG whose `details.errors` lists them (the route
 * table's own checks stop at its first problem).
 *
 * @example
 *   const config = validateProxyConfig(JSON.parse(readFileSync('proxy.json', 'utf8')));
 */
export function validateProxyConfig(input: unknown): ProxyConfig {
  const c = new JsonChecker();
  const config = c.object('config', input);
  if (config) {
    c.fields('config', config, TOP_FIELDS);
    if (config.version !== 1) c.add('version', `must be 1, got ${quote(config.version)}`);
    c.optionalString('description', config.description, 2000);
    const listen = config.listen === undefined ? undefined : c.object('listen', config.listen);
    if (listen) {
      c.fields('listen', listen, ['host', 'port']);
      if (listen.host !== undefined) c.string('listen.host', listen.host, HOST, 'a host name or address such as "0.0.0.0"');
      checkPort(c, 'listen.port', listen.port);
    }
    if (config.workers !== undefined) c.number('workers', config.workers, 1, 64, { integer: true });
    const admin = config.admin === undefined ? undefined : c.object('admin', config.admin);
    if (admin) {
      c.fields('admin', admin, ['host', 'port', 'tokenEnv']);
      if (admin.host !== undefined) c.string('admin.host', admin.host, HOST, 'a host name or address');
      c.number('admin.port', admin.port, 0, 65535, { integer: true });
      if (admin.tokenEnv !== undefined) c.string('admin.tokenEnv', admin.tokenEnv, ENV_NAME, 'an environment variable name such as STRANGLER_ADMIN_TOKEN');
    }
    checkState(c, config.state);
    const features = c.object('features', config.features);
    if (features) {
      if (Object.keys(features).length === 0) c.add('features', 'must name at least one feature');
      for (const name of Object.keys(features)) {
        if (!FEATURE_NAME.test(name)) c.add(`features.${name}`, `${quote(name)} is not a valid feature name: lower-case letters, digits, . _ and -, at most 64 (as the plan names it)`);
      }
    }
    const services = config.services === undefined ? undefined : c.object('services', config.services);
    if (services) {
      for (const [name, urls] of Object.entries(services)) {
        const path = `services.${name}`;
        if (!SERVICE.test(name)) c.add(path, `${quote(name)} is not a valid service name: lower-case letters, digits, _ and -, at most 32 (as the plan's gates name it)`);
        if (Array.isArray(urls)) {
          if (urls.length === 0) c.add(path, 'must list at least one URL');
          urls.forEach((u, i) => httpUrl(c, `${path}[${i}]`, u));
        } else httpUrl(c, path, urls);
      }
    }
    // createProxy takes these objects as options (ignoring keys it does not know); a file must not hide a typo.
    const healthCheck = config.healthCheck === undefined ? undefined : c.object('healthCheck', config.healthCheck);
    if (healthCheck) c.fields('healthCheck', healthCheck, ['path', 'intervalMs', 'timeoutMs', 'unhealthyThreshold', 'healthyThreshold']);
    const shadow = config.shadow === undefined ? undefined : c.object('shadow', config.shadow);
    if (shadow) c.fields('shadow', shadow, ['samples', 'sampleBodyBytes', 'maxCompareBytes', 'timeoutMs', 'maxInFlight', 'compare']);
    if (c.errors.length === 0) checkProxyOptions(c, config);
  }
  if (c.errors.length > 0) {
    const shown = c.errors.slice(0, 10).join('; ');
    const more = c.errors.length > 10 ? `; and ${c.errors.length - 10} more` : '';
    throw Object.assign(new StranglerError('PROXY_ERR_INVALID_CONFIG', `invalid proxy config: ${shown}${more}`), { details: { errors: c.errors } });
  }
  return input as ProxyConfig;
}

/** Reads and validates a config file; a JSON syntax error is PROXY_ERR_INVALID_CONFIG too. */
export function loadProxyConfigFile(path: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw Object.assign(new StranglerError('PROXY_ERR_INVALID_CONFIG', `cannot read the proxy config ${path}: ${(cause as Error).message}`, { cause }), { details: { errors: [`config: cannot read ${path}`] } });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    const message = `proxy config ${path} is not valid JSON: ${(cause as Error).message}`;
    throw Object.assign(new StranglerError('PROXY_ERR_INVALID_CONFIG', message, { cause }), { details: { errors: [`config: ${message}`] } });
  }
  return validateProxyConfig(parsed);
}

/** The options every proxy process (or cluster worker) gets from a config: the route table and the tuning, no state. */
export function proxyOptionsOf(config: ProxyConfig): Omit<ProxyOptions, 'state'> {
  const options: Omit<ProxyOptions, 'state'> = { routes: config.features };
  for (const field of PROXY_FIELDS) {
    if (config[field] !== undefined) (options as unknown as Record<string, unknown>)[field] = config[field];
  }
  if (config.listen?.host !== undefined) options.host = config.listen.host;
  if (config.listen?.port !== undefined) options.port = config.listen.port;
  return options;
}
