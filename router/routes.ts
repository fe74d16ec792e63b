/**
 * The router's HTTP routes (protocol.ts has the wire format): the event
 * stream, acks and the mode query, each authorized by the hypervisor's
 * token: 401 (token), then 403 (someone else's hypervisor), then 404 (not
 * this region).
 */
import type { Pool } from 'mysql2/promise';
import { bearerToken, tokenServerId, verifyHypervisorToken } from '../lib/auth/hypervisor-token.ts';
import { readJsonBody } from '../lib/http/json-body.ts';
import { sendJson } from '../lib/http/respond.ts';
import { createRouter, type RequestContext, type Router } from '../lib/http/router.ts';
import type { Logger } from '../lib/logger.ts';
import type { AckProcessor, AckResult } from './acks.ts';
import type { CutoverFollower } from './cutover-follower.ts';
import type { EventSource } from './event-source.ts';
import type { RouterMetrics } from './metrics.ts';
import { routerError } from './errors.ts';
import { ACK_BODY_LIMIT, ACKS_PATH, EVENTS_PATH, MODE_PATH, RETRY_MS, parseAckBody, switchFrame } from './protocol.ts';
import { fetchServerRegions } from './queries.ts';
import { startSse } from '../lib/sse/writer.ts';
import type { StreamHub } from './streams.ts';
import type { HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';

/** Every hypervisor's region, for token checks: read at start, reloaded on an unknown id at most every 5 s. */
export interface RegionDirectory {
  load(): Promise<void>;
  regionOf(serverId: number): Promise<string | undefined>;
  /** Hypervisors of `region`. */
  count(region: string): number;
}

export function createRegionDirectory(pool: Pool, countQuery: (query: string) => void): RegionDirectory {
  let serverRegions = new Map<number, string>();
  let loadedAt = 0;
  let loading: Promise<void> | undefined;
  function load(): Promise<void> {
    loading ??= (async () => {
      try {
        countQuery('servers');
        serverRegions = await fetchServerRegions(pool);
        loadedAt = Date.now();
      } finally {
        loading = undefined;
      }
    })();
    return loading;
  }
  return {
    load,
    async regionOf(serverId) {
      // Tokens name ids, so misses are bounded.
      const known = serverRegions.get(serverId);
      if (known !== undefined || Date.now() - loadedAt < 5000) return known;
      await load();
      return serverRegions.get(serverId);
    },
    count: (region) => [...serverRegions.values()].filter((r) => r === region).length,
  };
}

export interface RouteDeps {
  region: string;
  /** The hypervisor key ring as last read (lib/auth/hypervisor-keys.ts). */
  keys(): HypervisorKeyRing;
  /** A host's stream is taken over by a second one at most once per this many ms. */
  takeoverIntervalMs: number;
  pollIntervalMs: number;
  directory: RegionDirectory;
  cutover: CutoverFollower;
  hub: StreamHub;
  acks: AckProcessor;
  metric: RouterMetrics;
  log: Logger;
  closed(): boolean;
  /** Runs `fn` with the source that owns events now, once a switch in progress is over. */
  onSource<T>(fn: (source: EventSource) => Promise<T>): Promise<T>;
  /** A host's stream opened: the current source re-sends what it has claimed for it. */
  streamOpened(serverId: number): void;
}

/** Takeovers of one host's stream allowed per window (takeoverIntervalMs). */
const TAKEOVER_BURST = 3;

/**
 * @example
 *   const routes = createRouterRoutes(deps);   // a lib/http Router for createHttpService
 */
export function createRouterRoutes(deps: RouteDeps): Router {
  const { region, cutover, hub, log } = deps;
  /**
   * When each host's stream was last taken over: a token holder must not keep the real agent off its
   * stream. A few in a window are an agent reconnecting before its old connection was seen to close.
   */
  const takeovers = new Map<number, number[]>();

  function limitTakeover(serverId: number): void {
    if (!hub.streams.has(serverId)) return;
    const now = Date.now();
    const recent = (takeovers.get(serverId) ?? []).filter((at) => now - at < deps.takeoverIntervalMs);
    takeovers.set(serverId, recent);
    if (recent.length >= TAKEOVER_BURST) {
      deps.metric.takeovers.inc({ outcome: 'refused' });
      log.warn({ server_id: serverId }, 'a second stream for a hypervisor that already has one, again too soon: refused');
      throw routerError('ROUTER_ERR_TAKEOVER_LIMITED', `hypervisor ${serverId} already holds a stream that was replaced ${TAKEOVER_BURST} times in the last ${Math.ceil(deps.takeoverIntervalMs / 1000)} s; retry later`);
    }
    recent.push(now);
    // Forget hosts whose window has passed, so the map stays as small as the hosts being fought over.
    if (takeovers.size > 10_000) for (const [id, list] of takeovers) if (list.every((at) => now - at >= deps.takeoverIntervalMs)) takeovers.delete(id);
    deps.metric.takeovers.inc({ outcome: 'replaced' });
    log.warn({ server_id: serverId }, 'a second stream for a hypervisor replaces its first');
  }

  async function authorize(ctx: RequestContext): Promise<number> {
    const token = bearerToken(ctx.req.headers.authorization);
    if (!token) throw routerError('ROUTER_ERR_UNAUTHORIZED', 'send the hypervisor token as "Authorization: Bearer hv.<kid>.<id>.<issued>.<expires>.<mac>"');
    const tokenId = tokenServerId(token);
    const tokenRegion = tokenId === undefined ? undefined : await deps.directory.regionOf(tokenId);
    if (tokenId === undefined || tokenRegion === undefined || !verifyHypervisorToken(deps.keys(), token, tokenId, tokenRegion)) {
      throw routerError('ROUTER_ERR_UNAUTHORIZED', 'the hypervisor token is not valid');
    }
    const raw = ctx.params.id ?? '';
    if (!/^[1-9][0-9]{0,9}$/.test(raw) || Number(raw) !== tokenId) {
      throw routerError('ROUTER_ERR_FORBIDDEN', `this token belongs to hypervisor ${tokenId}; it can read and acknowledge only its own events`);
    }
    if (ctx.params.region !== region || tokenRegion !== region) {
      throw routerError('ROUTER_ERR_WRONG_REGION', `hypervisor ${tokenId} is in region ${tokenRegion}; this router serves ${region}`);
    }
    return tokenId;
  }

  function refuseWhileClosing(): void {
    if (deps.closed()) throw routerError('ROUTER_ERR_SHUTTING_DOWN', 'this router is shutting down; reconnect');
  }

  async function openStream(ctx: RequestContext): Promise<void> {
    const arrived = Date.now();
    const serverId = await authorize(ctx);
    refuseWhileClosing();
    limitTakeover(serverId);
    // The agent read the state before connecting, so a state read before it arrived may be older than the
    // agent's: re-read (one primary-key lookup, shared by concurrent connects) rather than bounce it.
    while (!cutover.delivery() || (!cutover.routed(serverId) && cutover.since() < arrived)) await cutover.refresh();
    startSse(ctx.req, ctx.res, `retry: ${RETRY_MS}\n: event router ${region}, hypervisor ${serverId}\n\n`);
    if (!cutover.routed(serverId)) {
      deps.metric.switches.inc();
      ctx.res.end(switchFrame(cutover.delivery()?.version ?? 0));
      return;
    }
    const stream = hub.add(serverId, ctx.req, ctx.res);
    log.debug({ server_id: serverId, holding: stream.sent.size }, 'agent connected');
    deps.streamOpened(serverId);
  }

  function sendAckResults(ctx: RequestContext, results: AckResult[], batch: boolean): void {
    const headers: Record<string, string> = deps.closed() ? { connection: 'close' } : {};
    if (batch) {
      sendJson(
        ctx.res,
        200,
        {
          results: results.map((r) =>
            r.outcome === 'acked' || r.outcome === 'duplicate'
              ? { event_id: r.event_id, duplicate: r.outcome === 'duplicate' }
              : { event_id: r.event_id, error: r.outcome === 'not_found' ? 'ROUTER_ERR_EVENT_NOT_FOUND' : 'ROUTER_ERR_NOT_CLAIMED' },
          ),
        },
        headers,
      );
      return;
    }
    const { event_id, outcome } = results[0]!;
    if (outcome === 'not_found') throw routerError('ROUTER_ERR_EVENT_NOT_FOUND', `event ${event_id} does not exist`);
    if (outcome === 'not_claimed') {
      throw routerError('ROUTER_ERR_NOT_CLAIMED', `event ${event_id} was never delivered (it is not running); nothing was recorded`);
    }
    sendJson(ctx.res, 200, { event_id, duplicate: outcome === 'duplicate' }, headers);
  }

  async function acknowledge(ctx: RequestContext): Promise<void> {
    const serverId = await authorize(ctx);
    refuseWhileClosing();
    const { items, batch } = parseAckBody(await readJsonBody(ctx.req, { limit: ACK_BODY_LIMIT }));
    // The source when the ack arrived (after a switch in progress): its completion goes where events are owned now.
    const results = await deps.onSource((source) => deps.acks.acknowledge(serverId, items, source));
    sendAckResults(ctx, results, batch);
  }

  async function mode(ctx: RequestContext): Promise<void> {
    const serverId = await authorize(ctx);
    if (!cutover.delivery() || Date.now() - cutover.since() > deps.pollIntervalMs) await cutover.refresh();
    sendJson(ctx.res, 200, {
      server_id: serverId,
      region,
      source: cutover.routed(serverId) ? 'router' : 'god-query',
      routing: cutover.delivery()?.routing,
      version: cutover.delivery()?.version ?? 0,
    });
  }

  return createRouter().add('GET', EVENTS_PATH, openStream).add('POST', ACKS_PATH, acknowledge).add('GET', MODE_PATH, mode);
}
