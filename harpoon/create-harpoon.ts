/**
 * Harpoon: the one service that reads and writes `events`. Others create
 * events, change their status and read them over HTTP; routers and Scheduler
 * V2 receive every change pushed over /v1/stream. Design and protocol:
 * harpoon/README.md.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { Registry } from 'prom-client';
import type { DbConfig } from '../lib/db/config.ts';
import { createMysqlPool } from '../lib/db/mysql-pool.ts';
import { collectProcessMetrics } from '../lib/metrics/default-metrics.ts';
import { StranglerError, invalidOption } from '../lib/errors.ts';
import { readJsonBody } from '../lib/http/json-body.ts';
import { sendJson } from '../lib/http/respond.ts';
import { createRouter, type RequestContext } from '../lib/http/router.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { pageLinks, toAction } from './actions.ts';
import { createAuthenticator, type Caller, type ServiceTokenSpec } from './auth.ts';
import type { StatusChangeInput } from './types.ts';
import { createCatalog } from './catalog.ts';
import { choosesHost } from './droplet-servers.ts';
import { createChangeLog } from './change-log.ts';
import { createConsolidator } from './consolidate.ts';
import { harpoonError } from './errors.ts';
import { ClosedError, QueueFullError, createGroupCommit } from './group-commit.ts';
import { createHarpoonMetrics } from './metrics.ts';
import { PEER_PATH, createPeers } from './peers.ts';
import { customerByTokenDigest, isForeignKeyError, isRetryable, listActions, listEvents, readEvents, readLog, supportsInsertReturning, toEvent, type EventRow } from './store.ts';
import { writeBatch, type OpOutcome, type WriteOp } from './write-batch.ts';
import { createStreamHub } from './stream.ts';
import { createLogPruner, readHorizon, type LogPrunerOptions } from './log-pruner.ts';
import { intParam, parseCreateBody, parseFilter, parsePathId, parseStatusBatch, parseStatusBody, queryParams, type EventFilter } from './validate.ts';

export interface HarpoonOptions {
  /** The `harpoon` MySQL user's settings. */
  db: DbConfig;
  /**
   * Service name → bearer token (at least 16 characters), or `{ token, scopes }` (harpoon/auth.ts: create,
   * read, stream, place, execute, peer); a bare string holds every scope.
   */
  tokens: Record<string, ServiceTokenSpec>;
  /** Base URLs of the other replicas (http://host:port); each pushes its commits to us and we to it. */
  peers?: string[];
  /** The token this replica presents to its peers (default: the first of `tokens` with the peer scope). */
  peerToken?: string;
  /** A name for logs and the stream's first comment (default: a random id). */
  replica?: string;
  /** MySQL connections (default 4): `writers` for concurrent batches, the rest for reads. */
  poolSize?: number;
  /** Batches written at once, each on its own connection (default: poolSize − 1, at most 3). */
  writers?: number;
  /** Group commit: the longest an item waits for companions (default 2 ms). */
  maxDelayMs?: number;
  /** Group commit: items per transaction at most (default 500). */
  maxBatchRows?: number;
  /** Items admitted to the write queue at most; beyond, 429 (default 5000). */
  maxQueue?: number;
  /** Distinct reads in flight at most; beyond, 429 (default 256). */
  maxReads?: number;
  /** Log entries kept in memory for resuming subscribers (default 10,000). */
  ringSize?: number;
  /** Seconds a 429 tells the client to wait (default 1). */
  retryAfterSeconds?: number;
  heartbeatMs?: number;
  /** A subscriber that stops reading is cut off past this many unsent bytes (default 4 MiB); it resumes from its cursor. */
  maxBufferedBytes?: number;
  bodyLimit?: number;
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
  /** The clock for event timestamps (ms since the epoch). */
  now?: () => number;
  /** event_log pruning (harpoon/log-pruner.ts): retentionMs (1 h), keepRows (ringSize, at least 1), batch, maxBatches, intervalMs (60 s); false: never prune. */
  prune?: Pick<LogPrunerOptions, 'retentionMs' | 'keepRows' | 'batch' | 'maxBatches' | 'intervalMs'> | false;
}

export interface Harpoon {
  start(): Promise<{ port: number; url: string }>;
  /** Refuses new work, commits everything admitted, ends streams (subscribers resume elsewhere), closes the pool. Idempotent. */
  close(): Promise<void>;
  readonly registry: Registry;
  /** The newest log id this replica has delivered. */
  head(): number;
}

function positiveInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw invalidOption(name, value, `an integer from ${min} to ${max}`);
  return value;
}

/**
 * @example
 *   const harpoon = createHarpoon({ db: service('harpoon'), tokens: { cloud: process.env.HARPOON_TOKEN! }, port: 0 });
 *   const { url } = await harpoon.start(); … await harpoon.close();
 */
export function createHarpoon(options: HarpoonOptions): Harpoon {
  const poolSize = positiveInt('poolSize', options.poolSize ?? 4, 2, 64);
  const maxDelayMs = options.maxDelayMs ?? 2;
  if (!(maxDelayMs >= 0 && maxDelayMs <= 1000)) throw invalidOption('maxDelayMs', maxDelayMs, 'from 0 to 1000 milliseconds');
  const maxBatchRows = positiveInt('maxBatchRows', options.maxBatchRows ?? 500, 1, 5000);
  const maxQueue = positiveInt('maxQueue', options.maxQueue ?? 5000, 1, 1_000_000);
  const maxReads = positiveInt('maxReads', options.maxReads ?? 256, 1, 100_000);
  const ringSize = positiveInt('ringSize', options.ringSize ?? 10_000, 0, 1_000_000);
  const retryAfter = positiveInt('retryAfterSeconds', options.retryAfterSeconds ?? 1, 1, 3600);
  const heartbeatMs = positiveInt('heartbeatMs', options.heartbeatMs ?? 15_000, 50, 600_000);
  const maxBufferedBytes = positiveInt('maxBufferedBytes', options.maxBufferedBytes ?? 4 << 20, 1024, 1 << 30);
  const bodyLimit = positiveInt('bodyLimit', options.bodyLimit ?? 512 * 1024, 1024, 16 << 20);
  const peerUrls = options.peers ?? [];
  for (const url of peerUrls) if (typeof url !== 'string' || !/^https?:\/\/[^/]+\/?$/.test(url)) throw invalidOption('peers', url, 'base URLs such as http://127.0.0.1:8100');
  const replica = options.replica ?? `harpoon-${randomUUID().slice(0, 8)}`;
  const now = options.now ?? Date.now;

  const log = (options.logger ?? silentLogger()).child({ component: 'harpoon', replica });
  const registry = options.registry ?? new Registry();
  // A registry of its own gets the process metrics (event-loop delay, GC, CPU); a shared one has them already.
  if (!options.registry) collectProcessMetrics(registry);
  // Batches in flight at once: one forms and writes its events rows while another holds the log lock
  // and commits (docs/benchmarks/harpoon.md measures the choice).
  const writers = positiveInt('writers', options.writers ?? Math.min(3, poolSize - 1), 1, poolSize - 1);
  // mysql2 connects lazily: creating a pool opens nothing until the first query. Writers have their own
  // connections, sending each batch's statements in two round trips; reads use the rest, so a burst of
  // reads never keeps a batch from committing.
  const pool = createMysqlPool(options.db, poolSize - writers);
  // No stack capture per statement: a batch's failure is logged and answered by its code and message.
  const writePool = createMysqlPool(options.db, writers, { multipleStatements: true, trace: false });
  // Pruning and its size gauges on a connection of their own, closed when idle: a run never holds a read's connection.
  const prunePool = options.prune === false ? undefined : createMysqlPool(options.db, 1, { maxIdle: 0, idleTimeoutMs: 10_000 });
  const db = (): Pool => pool;
  const auth = createAuthenticator(options.tokens, (digest) => consolidated(`customer:${digest}`, () => customerByTokenDigest(db(), digest)));
  const peerToken = options.peerToken ?? auth.tokenWith('peer') ?? '';

  let closed = false;
  let ready = false;
  let returning = true;

  const changeLog = createChangeLog(pool, { ringSize, onQuery: (name) => metrics.statements.inc({ purpose: name }) });
  const catalog = createCatalog(pool, { onQuery: () => metrics.statements.inc({ purpose: 'catalog' }, 2) });

  let readSlots = poolSize - writers;
  const readWaiters: Array<() => void> = [];
  async function withReadSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (readSlots > 0) readSlots--;
    else await new Promise<void>((r) => readWaiters.push(r));
    try {
      return await fn();
    } finally {
      const next = readWaiters.shift();
      if (next) next();
      else readSlots++;
    }
  }
  const reads = createConsolidator({ maxInflight: maxReads, onRead: (c) => metrics.reads.inc({ outcome: c ? 'consolidated' : 'query' }) });
  function consolidated<T>(key: string, read: () => Promise<T>): Promise<T> {
    return reads.run(key, () => withReadSlot(read));
  }

  const writer = createGroupCommit<WriteOp, OpOutcome>({
    maxDelayMs,
    maxRows: maxBatchRows,
    maxQueue,
    concurrency: writers,
    onBatch(rows, requests) {
      metrics.batchRows.observe(rows);
      metrics.batchRequests.observe(requests);
    },
    async write(ops) {
      const end = metrics.batchSeconds.startTimer();
      const conn = await writePool.getConnection();
      try {
        // A concurrent batch that created the same key, or a deadlock victim: rolled back whole, written once more.
        const result = await writeBatch(conn, ops, catalog, now(), returning).catch((err: unknown) => {
          if (!isRetryable(err)) throw err;
          metrics.statements.inc({ purpose: 'batch_retry' });
          return writeBatch(conn, ops, catalog, now(), returning);
        });
        metrics.statements.inc({ purpose: 'write' }, result.statements);
        // One labelled increment per kind, not per change: a label lookup per row was a visible share of a batch.
        const byKind = new Map<string, number>();
        for (const c of result.changes) byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
        for (const [kind, n] of byKind) metrics.written.inc({ kind }, n);
        peers.publish(result.changes);
        changeLog.append(result.changes).catch((err: unknown) => log.error({ err }, 'could not apply a committed batch to the change log'));
        return result.outcomes;
      } finally {
        conn.release();
        end();
      }
    },
  });

  const metrics = createHarpoonMetrics(registry, {
    queueDepth: () => writer.depth(),
    subscribers: () => hub.count(),
    head: () => changeLog.head(),
    readsInflight: () => reads.inflight(),
  });

  const hub = createStreamHub({
    log: changeLog,
    readPage: (after, upto, limit) =>
      consolidated(`log:${after}:${upto}:${limit}`, async () => {
        metrics.statements.inc({ purpose: 'log_resume' });
        return readLog(db(), after, upto, limit);
      }),
    readHorizon: () => consolidated('log:horizon', () => readHorizon(db())),
    metrics,
    heartbeatMs,
    maxBufferedBytes,
    onError: (err) => log.warn({ err: (err as Error).message }, 'a subscriber catch-up read failed; it was disconnected and will resume'),
  });

  const peers = createPeers({ urls: peerUrls, token: peerToken, replica, log: changeLog, metrics, logger: log, heartbeatMs, maxBufferedBytes });
  // Every replica runs one; a named lock lets one at a time prune (log-pruner.ts).
  const pruner =
    options.prune === false
      ? undefined
      : createLogPruner({ pool: prunePool!, registry, logger: log, keepRows: Math.max(1, ringSize), ...options.prune, protectFrom: () => hub.oldestCatchUp() });

  // ---- helpers -------------------------------------------------------------------------------

  function refuseWhileClosing(): void {
    if (closed) throw harpoonError('HARPOON_ERR_SHUTTING_DOWN', 'this Harpoon replica is shutting down; retry on another one');
  }

  function backpressure(queue: 'write' | 'read', err: QueueFullError): StranglerError {
    metrics.backpressure.inc({ queue });
    return harpoonError('HARPOON_ERR_BACKPRESSURE', `Harpoon is saturated: the ${queue} queue holds ${err.depth} (limit ${err.limit}); nothing of this request was accepted, retry in ${retryAfter} s`);
  }

  /** Runs `fn` turning queue refusals and database failures into HTTP errors with codes. */
  async function guarded<T>(ctx: RequestContext, queue: 'write' | 'read', fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof QueueFullError) {
        ctx.res.setHeader('retry-after', String(retryAfter));
        throw backpressure(queue, err);
      }
      if (err instanceof ClosedError) throw harpoonError('HARPOON_ERR_SHUTTING_DOWN', 'this Harpoon replica is shutting down; retry on another one');
      if (err instanceof StranglerError) throw err;
      if (isForeignKeyError(err)) {
        throw harpoonError('HARPOON_ERR_VALIDATION', 'droplet_id, customer_id or server_id names no existing row; nothing was written', err);
      }
      log.warn({ err: (err as Error).message, requestId: ctx.requestId }, 'database failure');
      throw harpoonError('HARPOON_ERR_UNAVAILABLE', `MySQL failed while serving this request; nothing of it was committed; retry (request ${ctx.requestId})`, err);
    }
  }

  function outcomeError(o: OpOutcome): { code: string; message: string } | undefined {
    return o.ok ? undefined : { code: o.error.code, message: o.error.message };
  }

  async function readRow(id: number): Promise<EventRow | undefined> {
    return consolidated(`event:${id}`, async () => {
      metrics.statements.inc({ purpose: 'read_event' });
      return (await readEvents(db(), [id]))[0];
    });
  }

  // ---- writes --------------------------------------------------------------------------------

  async function createEvents(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req, 'create');
    refuseWhileClosing();
    const { items, batch } = parseCreateBody(await readJsonBody(ctx.req, { limit: bodyLimit }));
    // A create event already placed on a hypervisor, or a host's event (pdu_reboot, …, or any event for no
    // droplet), picks the hypervisor itself: a placement, only the scheduler's token may. Events for a
    // droplet are addressed to its hypervisor, which the write checks (harpoon/droplet-servers.ts).
    if (items.some(choosesHost)) auth.require(caller, 'place', 'create a create event already placed on a server, or an event for a hypervisor rather than a droplet');
    const ops: WriteOp[] = [];
    for (const input of items) {
      // Known regions and sizes are answered from memory without a promise per item; only an unknown one
      // waits for the catalog to reload (or refuses).
      const regionId = catalog.knownRegionId(input.region) ?? (await guarded(ctx, 'read', () => catalog.regionId(input.region)));
      const size = input.args?.size;
      if (typeof size === 'string' && !catalog.knowsSize(size)) await guarded(ctx, 'read', () => catalog.checkSize(size));
      ops.push({ kind: 'create', input, regionId });
    }
    const outcomes = await guarded(ctx, 'write', () => writer.submit(ops));
    if (!batch) {
      const o = outcomes[0]!;
      if (!o.ok) throw o.error;
      if (!('create' in o)) throw new Error('create op without a create outcome');
      sendJson(ctx.res, o.create.duplicate ? 200 : 201, o.create);
      return;
    }
    const results = outcomes.map((o) => ('create' in o ? o.create : { error: outcomeError(o)! }));
    sendJson(ctx.res, outcomes.every((o) => o.ok) ? 201 : 200, { events: results });
  }

  async function setStatus(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req);
    refuseWhileClosing();
    const id = parsePathId(ctx.params.id, 'event');
    const change = parseStatusBody(await readJsonBody(ctx.req, { limit: bodyLimit }), id);
    mayChange(caller, [change]);
    const only = await boundTo(ctx, caller);
    const [o] = await guarded(ctx, 'write', () => writer.submit([{ kind: 'change', input: change, ...only }]));
    if (!o!.ok) throw o!.error;
    if (!('status' in o!)) throw new Error('change op without a status outcome');
    sendJson(ctx.res, 200, o.status);
  }

  /**
   * Placing (server_id, or an unplaceable event's error) is the scheduler's; running/done/error of a
   * placed event is the executor's (a router). A request with one change the token may not make is
   * refused whole: nothing is written.
   */
  function mayChange(caller: string, changes: StatusChangeInput[]): void {
    for (const c of changes) {
      if (c.server_id !== undefined) auth.require(caller, 'place', 'place events (server_id)');
      if (c.status === undefined) continue;
      if (c.status === 'error') {
        if (!auth.tokenHolds(caller, 'place') && !auth.tokenHolds(caller, 'execute')) auth.require(caller, 'execute', `set status ${c.status}`);
      } else if (c.status === 'pending') auth.require(caller, 'place', 'set status pending');
      else auth.require(caller, 'execute', `set status ${c.status}`);
    }
  }

  /** A region-bound token's changes carry its region (checked on the locked rows, write-batch.ts) and a tag for the request. */
  async function boundTo(ctx: RequestContext, caller: string): Promise<{ only?: { regionId: number; token: string; request: object } }> {
    const region = auth.regionOf(caller);
    if (region === undefined) return {};
    return { only: { regionId: await guarded(ctx, 'read', () => catalog.regionId(region)), token: caller, request: {} } };
  }

  async function setStatuses(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req);
    refuseWhileClosing();
    const changes = parseStatusBatch(await readJsonBody(ctx.req, { limit: bodyLimit }));
    mayChange(caller, changes);
    const only = await boundTo(ctx, caller);
    const outcomes = await guarded(ctx, 'write', () => writer.submit(changes.map((input) => ({ kind: 'change' as const, input, ...only }))));
    // Another region's event in the request: all of it was refused, so the request is.
    const refused = only.only && outcomes.find((o) => !o.ok && o.error.code === 'HARPOON_ERR_FORBIDDEN');
    if (refused && !refused.ok) throw refused.error;
    sendJson(ctx.res, 200, {
      results: outcomes.map((o, i) => ('status' in o ? { id: changes[i]!.id, ...o.status } : { id: changes[i]!.id, error: outcomeError(o)! })),
    });
  }

  // ---- reads ---------------------------------------------------------------------------------

  async function getEvent(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req, 'read');
    const id = parsePathId(ctx.params.id, 'event');
    const row = await guarded(ctx, 'read', () => readRow(id));
    if (!row) throw harpoonError('HARPOON_ERR_NOT_FOUND', `event ${id} not found`);
    const event = toEvent(row, catalog);
    auth.requireRegions(caller, new Set([event.region]), `reading event ${id} (in ${event.region})`);
    sendJson(ctx.res, 200, { event });
  }

  async function resolveRegions(filter: EventFilter): Promise<number[]> {
    const ids: number[] = [];
    for (const slug of filter.regions) ids.push(await catalog.regionId(slug));
    return ids;
  }

  async function getEvents(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req, 'read');
    const params = queryParams(ctx.query, ['region', 'type', 'status', 'unscheduled', 'server_id', 'droplet_id', 'after', 'limit']);
    const filter = parseFilter(params);
    auth.requireRegions(caller, filter.regions, 'a list of events');
    const after = intParam(params, 'after', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = intParam(params, 'limit', 1, 1000) ?? 100;
    const regionIds = await guarded(ctx, 'read', () => resolveRegions(filter));
    // The cursor is read before the rows: a stream started from it misses nothing (it may repeat what the list shows).
    const cursor = changeLog.head();
    const key = JSON.stringify(['list', regionIds, [...filter.types], [...filter.statuses], filter.unscheduled, filter.serverId ?? null, filter.dropletId ?? null, after, limit]);
    const rows = await guarded(ctx, 'read', () =>
      consolidated(key, async () => {
        metrics.statements.inc({ purpose: 'list_events' });
        return listEvents(db(), filter, regionIds, after, limit);
      }),
    );
    sendJson(ctx.res, 200, {
      events: rows.map((r) => toEvent(r, catalog)),
      next_after: rows.length === limit ? Number(rows.at(-1)!.id) : null,
      cursor,
    });
  }

  async function getAction(ctx: RequestContext): Promise<void> {
    const caller = await guarded(ctx, 'read', () => auth.any(ctx.req));
    const id = parsePathId(ctx.params.id, 'action');
    const row = await guarded(ctx, 'read', () => readRow(id));
    // Another customer's action answers exactly like one that does not exist.
    if (!row || (caller.kind === 'customer' && row.customer_id !== caller.id)) throw harpoonError('HARPOON_ERR_NOT_FOUND', `action ${id} not found`);
    sendJson(ctx.res, 200, { action: toAction(row, catalog) });
  }

  async function actionList(ctx: RequestContext, caller: Caller, path: string, dropletId?: number): Promise<void> {
    const params = queryParams(ctx.query, ['page', 'per_page']);
    const page = intParam(params, 'page', 1, 1_000_000) ?? 1;
    const perPage = intParam(params, 'per_page', 1, 200) ?? 20;
    const scope = { ...(caller.kind === 'customer' ? { customerId: caller.id } : {}), ...(dropletId === undefined ? {} : { dropletId }) };
    const key = JSON.stringify(['actions', scope, page, perPage]);
    const { rows, total } = await guarded(ctx, 'read', () =>
      consolidated(key, async () => {
        metrics.statements.inc({ purpose: 'list_actions' }, 2);
        return listActions(db(), scope, perPage, (page - 1) * perPage);
      }),
    );
    sendJson(ctx.res, 200, { actions: rows.map((r) => toAction(r, catalog)), links: pageLinks(path, page, perPage, total), meta: { total } });
  }

  async function getActions(ctx: RequestContext): Promise<void> {
    const caller = await guarded(ctx, 'read', () => auth.any(ctx.req));
    await actionList(ctx, caller, '/v2/actions');
  }

  async function getDropletActions(ctx: RequestContext): Promise<void> {
    const caller = await guarded(ctx, 'read', () => auth.any(ctx.req));
    const dropletId = parsePathId(ctx.params.id, 'droplet');
    await actionList(ctx, caller, `/v2/droplets/${dropletId}/actions`, dropletId);
  }

  // ---- stream --------------------------------------------------------------------------------

  async function stream(ctx: RequestContext): Promise<void> {
    const caller = auth.service(ctx.req, 'stream');
    refuseWhileClosing();
    const params = queryParams(ctx.query, ['cursor', 'region', 'type', 'status', 'unscheduled', 'server_id']);
    const filter = parseFilter(params);
    auth.requireRegions(caller, filter.regions, 'a stream');
    await guarded(ctx, 'read', () => resolveRegions(filter));
    const header = ctx.req.headers['last-event-id'];
    let cursor: number;
    if (typeof header === 'string' && header.trim() !== '') {
      if (!/^[0-9]{1,16}$/.test(header.trim())) throw harpoonError('HARPOON_ERR_INVALID_QUERY', 'Last-Event-ID must be a cursor (a non-negative integer)');
      cursor = Number(header.trim());
    } else {
      cursor = intParam(params, 'cursor', 0, Number.MAX_SAFE_INTEGER) ?? changeLog.head();
    }
    if (cursor > changeLog.head()) {
      // A cursor from a peer that committed a moment ago: read what it committed before deciding.
      await guarded(ctx, 'read', () => changeLog.catchUp());
      if (cursor > changeLog.head()) {
        throw harpoonError('HARPOON_ERR_CURSOR_AHEAD', `cursor ${cursor} is beyond the newest change (${changeLog.head()}); resume from a cursor a stream gave you`);
      }
    }
    if (!changeLog.fromMemory(cursor)) {
      // Older than memory reaches: the log must still hold what follows the cursor, or the answer is explicit.
      const horizon = await guarded(ctx, 'read', () => consolidated('log:horizon', () => readHorizon(db())));
      if (cursor < horizon) {
        metrics.tooOld.inc();
        throw harpoonError(
          'HARPOON_ERR_CURSOR_TOO_OLD',
          `cursor ${cursor} is older than the oldest change kept (event_log pruned through ${horizon}); read the current state (GET /v1/events) and resume from its cursor`,
        );
      }
    }
    hub.open(ctx.req, ctx.res, filter, cursor, replica);
  }

  function peerStream(ctx: RequestContext): void {
    // Only another replica: a peer stream carries every change of every region, unfiltered.
    auth.service(ctx.req, 'peer');
    refuseWhileClosing();
    peers.accept(ctx.res);
  }

  const routes = createRouter()
    .add('POST', '/v1/events', createEvents)
    .add('GET', '/v1/events', getEvents)
    .add('POST', '/v1/events/status', setStatuses)
    .add('GET', '/v1/events/:id', getEvent)
    .add('POST', '/v1/events/:id/status', setStatus)
    .add('GET', '/v1/stream', stream)
    .add('GET', PEER_PATH, peerStream)
    .add('GET', '/v2/actions', getActions)
    .add('GET', '/v2/actions/:id', getAction)
    .add('GET', '/v2/droplets/:id/actions', getDropletActions);

  const http = createHttpService({
    name: 'harpoon',
    router: routes,
    registry,
    logger: log,
    port: options.port,
    host: options.host,
    ready: () => ready && !closed,
  });

  let closing: Promise<void> | undefined;
  return {
    registry,
    head: () => changeLog.head(),
    async start() {
      try {
        returning = await supportsInsertReturning(db());
        if (!returning) log.warn('the server has no INSERT … RETURNING (MySQL): the rows of a batch are inserted one statement each');
        await catalog.load();
        await changeLog.init();
      } catch (err) {
        closed = true;
        await Promise.all([pool.end().catch(() => {}), writePool.end().catch(() => {}), prunePool?.end().catch(() => {})]);
        throw err;
      }
      const address = await http.start();
      peers.start();
      pruner?.start();
      ready = true;
      log.info({ url: address.url, head: changeLog.head(), peers: peerUrls.length }, 'harpoon started');
      return address;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        ready = false;
        const httpClosed = http.close();
        hub.closeAll();
        await pruner?.close();
        peers.close();
        await writer.drain();
        // Requests answered during the drain leave keep-alive sockets behind; past a grace period nothing is in flight.
        const force = setTimeout(() => http.server.closeAllConnections(), 2000);
        http.server.closeIdleConnections();
        await httpClosed;
        clearTimeout(force);
        await Promise.all([pool.end().catch(() => {}), writePool.end().catch(() => {}), prunePool?.end().catch(() => {})]);
      })();
      return closing;
    },
  };
}
