import { Registry } from 'prom-client';
import type { FeatureStateSource } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { ProxyExchange } from './capture/recorder.ts';
import type { CompareRules } from './compare.ts';
import { defaultEngine, type EngineFactory } from './engine.ts';
import type { RouteTable } from './route-table.ts';
import type { ShadowSample, ShadowSettings } from './shadow.ts';
import type { AgentOptions, HealthCheckOptions } from './upstreams.ts';

export interface ProxyOptions {
  /** The route table (see RouteTable in route-table.ts for the format and an example). */
  routes: RouteTable;
  /** Live feature states (the cutover's MySQL reader, or a fixed map in tests). A feature with no state goes to legacy. */
  state: FeatureStateSource;
  /** Where the proxy_* metrics go; a fresh Registry by default. */
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
  /** Largest request body accepted, in bytes (1 MiB by default); bodies are read before forwarding. */
  bodyLimit?: number;
  /** Time allowed to open a connection to an upstream instance (2 s by default). */
  connectTimeoutMs?: number;
  /** Time allowed until an upstream's response headers (30 s by default; 0 = none). Routes may override; event streams never time out once they answered. */
  responseTimeoutMs?: number;
  /** How long close() waits for in-flight requests before cutting them (10 s by default). */
  drainTimeoutMs?: number;
  healthCheck?: Partial<HealthCheckOptions>;
  /** Keep-alive agent settings per upstream instance. */
  agent?: Partial<AgentOptions>;
  shadow?: Partial<ShadowSettings> & {
    /** Comparison rules for every route (features and routes add their own). */
    compare?: CompareRules;
  };
  /** Called with every shadow sample as it is recorded (a cluster worker forwards them to its primary). */
  onShadowSample?: (sample: ShadowSample) => void;
  /** Sent as `x-proxy-worker` on every answer (a cluster sets it to "<worker id>/<pid>"). */
  identity?: string;
  /**
   * Client connections this process accepts at once (9,000 by default). Each
   * relayed stream holds two sockets (client and upstream), so 9,000 keeps a
   * process under the 20,000-socket budget; run more workers for more.
   */
  maxClientConnections?: number;
  /**
   * Adds X-Forwarded-For/-Port/-Proto/-Host to upstream requests. Off by
   * default: this system's upstreams do not read them, and they cost about
   * 10% of a bare pass-through's CPU per request (bench/proxy.ts).
   */
  xForwarded?: boolean;
  /**
   * What forwards each attempt: the pipe engine by default (see engine.ts for
   * why); `httpProxy3Engine`, or `httpProxyApi(...)` over another http-proxy
   * library, plug in instead (bench/proxy.ts measures all three).
   */
  engine?: EngineFactory;
  /** Told about every finished request except /metrics, /healthz, /readyz: the traffic recorder (proxy/capture/recorder.ts). Unset: no cost. */
  onExchange?: (exchange: ProxyExchange) => void;
}

const MAX_BODY_LIMIT = 64 * 1024 * 1024;

function positiveInt(name: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw invalidOption(name, value, `an integer from ${min} to ${max}`);
  return v as number;
}

function checkHealthOptions(h: Partial<HealthCheckOptions> | undefined): HealthCheckOptions {
  if (h !== undefined && (typeof h !== 'object' || h === null)) throw invalidOption('healthCheck', h, 'an object { path?, intervalMs?, timeoutMs?, unhealthyThreshold?, healthyThreshold? }');
  const path = h?.path ?? '/healthz';
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidOption('healthCheck.path', h?.path, 'a path starting with /');
  const intervalMs = positiveInt('healthCheck.intervalMs', h?.intervalMs, 2000, 50, 600_000);
  return {
    path,
    intervalMs,
    timeoutMs: positiveInt('healthCheck.timeoutMs', h?.timeoutMs, Math.min(1000, intervalMs), 10, 600_000),
    unhealthyThreshold: positiveInt('healthCheck.unhealthyThreshold', h?.unhealthyThreshold, 2, 1, 100),
    healthyThreshold: positiveInt('healthCheck.healthyThreshold', h?.healthyThreshold, 1, 1, 100),
  };
}

function checkAgentOptions(a: Partial<AgentOptions> | undefined): AgentOptions {
  if (a !== undefined && (typeof a !== 'object' || a === null)) throw invalidOption('agent', a, 'an object { maxSockets?, maxFreeSockets?, keepAliveMsecs? }');
  const maxSockets = a?.maxSockets ?? Infinity;
  if (maxSockets !== Infinity && (!Number.isInteger(maxSockets) || maxSockets < 1)) throw invalidOption('agent.maxSockets', a?.maxSockets, 'a positive integer or Infinity');
  return {
    maxSockets,
    maxFreeSockets: positiveInt('agent.maxFreeSockets', a?.maxFreeSockets, 256, 1, 100_000),
    keepAliveMsecs: positiveInt('agent.keepAliveMsecs', a?.keepAliveMsecs, 1000, 1, 600_000),
  };
}

function checkShadowOptions(s: ProxyOptions['shadow']): ShadowSettings {
  if (s !== undefined && (typeof s !== 'object' || s === null)) throw invalidOption('shadow', s, 'an object { samples?, sampleBodyBytes?, maxCompareBytes?, timeoutMs?, maxInFlight?, compare? }');
  return {
    samples: positiveInt('shadow.samples', s?.samples, 50, 0, 10_000),
    sampleBodyBytes: positiveInt('shadow.sampleBodyBytes', s?.sampleBodyBytes, 2048, 0, 1024 * 1024),
    maxCompareBytes: positiveInt('shadow.maxCompareBytes', s?.maxCompareBytes, 1024 * 1024, 1, 64 * 1024 * 1024),
    timeoutMs: positiveInt('shadow.timeoutMs', s?.timeoutMs, 5000, 1, 600_000),
    maxInFlight: positiveInt('shadow.maxInFlight', s?.maxInFlight, 100, 1, 100_000),
  };
}

/** ProxyOptions with their defaults, checked once. */
export interface ProxySettings {
  port: number;
  host: string;
  bodyLimit: number;
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  drainTimeoutMs: number;
  maxClientConnections: number;
  health: HealthCheckOptions;
  agentOptions: AgentOptions;
  shadowSettings: ShadowSettings;
  xForwarded: boolean;
  makeEngine: EngineFactory;
  registry: Registry;
}

/**
 * Checks createProxy's options and fills in the defaults: a bad option fails
 * with CONFIG_ERR_INVALID_OPTION naming it and its value.
 *
 * @example
 *   const { port, bodyLimit, health } = proxySettings({ routes, state }); // port 0, 1 MiB, /healthz every 2 s
 */
export function proxySettings(options: ProxyOptions): ProxySettings {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', options, 'an object');
  if (typeof options.state?.get !== 'function') throw invalidOption('state', typeof options.state, 'a FeatureStateSource ({ get(feature) })');
  const port = positiveInt('port', options.port, 0, 0, 65535);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption('host', options.host, 'a non-empty host name or address');
  const bodyLimit = positiveInt('bodyLimit', options.bodyLimit, 1024 * 1024, 0, MAX_BODY_LIMIT);
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 2000, 1, 600_000);
  const responseTimeoutMs = positiveInt('responseTimeoutMs', options.responseTimeoutMs, 30_000, 0, 3_600_000);
  const drainTimeoutMs = positiveInt('drainTimeoutMs', options.drainTimeoutMs, 10_000, 0, 600_000);
  const maxClientConnections = positiveInt('maxClientConnections', options.maxClientConnections, 9000, 1, 1_000_000);
  const health = checkHealthOptions(options.healthCheck);
  const agentOptions = checkAgentOptions(options.agent);
  const shadowSettings = checkShadowOptions(options.shadow);
  if (options.identity !== undefined && (typeof options.identity !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(options.identity))) {
    throw invalidOption('identity', options.identity, 'a short printable string (sent as x-proxy-worker)');
  }
  if (options.onShadowSample !== undefined && typeof options.onShadowSample !== 'function') throw invalidOption('onShadowSample', typeof options.onShadowSample, 'a function');
  const xForwarded = options.xForwarded ?? false;
  if (typeof xForwarded !== 'boolean') throw invalidOption('xForwarded', options.xForwarded, 'true or false');
  const makeEngine = options.engine ?? defaultEngine;
  if (typeof makeEngine !== 'function') throw invalidOption('engine', typeof options.engine, 'a function returning an http-proxy server');
  const registry = options.registry ?? new Registry();
  if (typeof registry?.metrics !== 'function' || typeof registry.registerMetric !== 'function') {
    throw invalidOption('registry', typeof options.registry, 'a prom-client Registry');
  }
  if (options.onExchange !== undefined && typeof options.onExchange !== 'function') throw invalidOption('onExchange', typeof options.onExchange, 'a function');
  return { port, host, bodyLimit, connectTimeoutMs, responseTimeoutMs, drainTimeoutMs, maxClientConnections, health, agentOptions, shadowSettings, xForwarded, makeEngine, registry };
}
