import { EventEmitter } from 'node:events';
import { invalidOption, StranglerError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { FEATURES, type FeatureState, type FeatureStateChange, type ObservableFeatureStateSource, type RoutingMode } from './types.ts';

/**
 * The cutover state as followers (Event Routers, Scheduler V2 replicas) read
 * it once Harpoon feeds them: over HTTP from the cutover admin's
 * GET /cutover/state, which answers from memory. A fleet of followers
 * asking every second then costs MySQL nothing — the admin's one reader
 * is the only poller of cutover_features — and a follower that holds no
 * MySQL connection can still follow the plan.
 *
 * When the admin cannot be reached the last state read is kept (a follower
 * must not flap back to legacy because the control plane restarted) and
 * `lastReadAt` tells how old it is.
 */
export interface HttpFeatureStateSource extends ObservableFeatureStateSource {
  /** Reads the state once (throws CUTOVER_ERR_STATE_UNAVAILABLE if it cannot), then every `intervalMs`. */
  start(): Promise<void>;
  /** Reads now; resolves once states and change events are up to date. */
  refresh(): Promise<void>;
  /** Stops reading; idempotent. */
  close(): Promise<void>;
  on(event: 'change', listener: (change: FeatureStateChange) => void): this;
  on(event: 'poll-error', listener: (err: Error) => void): this;
  readonly lastReadAt: Date | undefined;
}

export interface HttpFeatureStateSourceOptions {
  /** The cutover admin's base URL (what `strangler cutover --url` takes), e.g. http://127.0.0.1:9400. */
  url: string;
  /** An admin token; the follower appears under its name in the admin's logs, never in the history (it only reads). */
  token: string;
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Per request (default 5 s). */
  timeoutMs?: number;
  logger?: Logger;
  fetch?: typeof fetch;
}

const MODES: readonly RoutingMode[] = ['legacy', 'shadow', 'canary', 'full'];

function legacy(feature: string): FeatureState {
  return { feature, step: 0, stepName: 'legacy', mode: 'legacy', percent: 0, regions: null, paused: false, version: 0, updatedAt: new Date(0).toISOString() };
}

/** One feature from the wire, failing safe as parseFeatureRow does: an unknown mode reads as legacy. */
function parseState(raw: unknown): FeatureState | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r.feature !== 'string') return undefined;
  const mode = MODES.includes(r.mode as RoutingMode) ? (r.mode as RoutingMode) : 'legacy';
  const percent = Number(r.percent);
  const regions = Array.isArray(r.regions) ? r.regions.filter((x): x is string => typeof x === 'string') : null;
  return {
    feature: r.feature,
    step: Number(r.step) || 0,
    stepName: typeof r.stepName === 'string' ? r.stepName : mode,
    mode,
    percent: Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : 0,
    regions,
    paused: r.paused === true,
    version: Number(r.version) || 0,
    updatedAt: typeof r.updatedAt === 'string' ? r.updatedAt : new Date(0).toISOString(),
  };
}

/**
 * @example
 *   const state = createHttpFeatureStateSource({ url: adminUrl, token: process.env.CUTOVER_TOKEN! });
 *   await state.start();
 *   state.onChange(({ feature, state }) => log.info({ feature, mode: state.mode }, 'cutover moved'));
 *   goesNew('event-writes', state.get('event-writes')!, { key: '42' });
 */
export function createHttpFeatureStateSource(options: HttpFeatureStateSourceOptions): HttpFeatureStateSource {
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw invalidOption('url', String(options.url), 'the cutover admin base URL, e.g. http://127.0.0.1:9400');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalidOption('url', options.url, 'an http:// or https:// URL');
  if (typeof options.token !== 'string' || options.token.length === 0) throw invalidOption('token', '(not shown)', 'the admin token to read the state with');
  const intervalMs = options.intervalMs ?? 1000;
  if (!Number.isFinite(intervalMs) || intervalMs < 10) throw invalidOption('intervalMs', String(intervalMs), 'at least 10');
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 1) throw invalidOption('timeoutMs', String(timeoutMs), 'at least 1');
  const stateUrl = new URL(`${base.pathname.replace(/\/$/, '')}/cutover/state`, base).href;
  const doFetch = options.fetch ?? fetch;
  const logger = (options.logger ?? silentLogger()).child({ component: 'cutover-http-state' });
  const emitter = new EventEmitter();
  const states = new Map<string, FeatureState>();
  let loaded = false;
  let lastReadAt: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let inflight: Promise<void> | undefined;
  let failures = 0;

  async function load(): Promise<void> {
    let res: Response;
    try {
      res = await doFetch(stateUrl, { headers: { authorization: `Bearer ${options.token}` }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new StranglerError('CUTOVER_ERR_STATE_UNAVAILABLE', `cannot reach the cutover admin at ${stateUrl}: ${(err as Error).message}`, { cause: err });
    }
    const body = (await res.json().catch(() => undefined)) as { features?: unknown; code?: string; message?: string } | undefined;
    if (res.status !== 200 || !Array.isArray(body?.features)) {
      throw new StranglerError(
        'CUTOVER_ERR_STATE_UNAVAILABLE',
        `the cutover admin answered ${res.status} ${body?.code ?? ''} ${body?.message ?? ''} for ${stateUrl}`.replace(/\s+/g, ' ').trim(),
      );
    }
    const changes: FeatureStateChange[] = [];
    for (const raw of body.features) {
      const state = parseState(raw);
      if (!state) continue;
      const previous = states.get(state.feature);
      if (previous && previous.version === state.version && previous.mode === state.mode) continue;
      states.set(state.feature, state);
      changes.push({ feature: state.feature, state, previous: loaded ? (previous ?? legacy(state.feature)) : undefined });
    }
    loaded = true;
    lastReadAt = new Date();
    if (failures > 0) logger.info({ failures }, 'cutover admin reachable again');
    failures = 0;
    for (const change of changes) {
      try {
        emitter.emit('change', change);
      } catch (err) {
        logger.error({ err, feature: change.feature }, 'a cutover change listener threw');
      }
    }
  }

  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => {
      refresh().then(schedule, (err: Error) => {
        failures++;
        if (failures === 1 || failures % 60 === 0) logger.warn({ err: err.message, failures }, 'cannot read the cutover state; keeping the last one');
        if (emitter.listenerCount('poll-error') > 0) emitter.emit('poll-error', err);
        schedule();
      });
    }, intervalMs);
    timer.unref();
  }

  const source: HttpFeatureStateSource = {
    get(feature) {
      return states.get(feature) ?? ((FEATURES as readonly string[]).includes(feature) ? legacy(feature) : undefined);
    },
    all() {
      const known = FEATURES.map((f) => source.get(f)!);
      return [...known, ...[...states.values()].filter((s) => !(FEATURES as readonly string[]).includes(s.feature))];
    },
    onChange(listener) {
      emitter.on('change', listener);
      return () => emitter.off('change', listener);
    },
    async start() {
      if (closed) throw new Error('this cutover state source is closed');
      await refresh();
      if (!timer) schedule();
    },
    refresh,
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await inflight?.catch(() => {});
    },
    on(event: string, listener: (...args: never[]) => void) {
      emitter.on(event, listener as (...args: unknown[]) => void);
      return source;
    },
    get lastReadAt() {
      return lastReadAt;
    },
  };
  return source;
}
