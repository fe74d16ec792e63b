import { invalidOption, StranglerError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { createPolledStateSource, type PolledStateSource } from './polled-source.ts';
import type { FeatureState, RoutingMode } from './types.ts';

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
export interface HttpFeatureStateSource extends PolledStateSource {
  /** Stops reading; idempotent. (start() throws CUTOVER_ERR_STATE_UNAVAILABLE when the first read fails.) */
  close(): Promise<void>;
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

  async function read(): Promise<FeatureState[]> {
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
    return body.features.flatMap((raw) => parseState(raw) ?? []);
  }

  const polled = createPolledStateSource({
    read,
    intervalMs,
    logger,
    unavailable: 'cannot read the cutover state; keeping the last one',
    recovered: 'cutover admin reachable again',
  });
  const source: HttpFeatureStateSource = Object.assign(polled, { close: () => polled.stop() });
  return source;
}
