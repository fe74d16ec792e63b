/**
 * The typed client other services use to talk to Harpoon: writes with
 * retries that are safe, reads, and a stream subscription that resumes by
 * itself. Protocol: harpoon/README.md.
 *
 * Retries: a 429 (nothing accepted) is retried after its Retry-After; a
 * refused connection or a 503 (nothing committed) moves on to the next
 * replica. A connection that breaks after the request was sent is retried
 * only when that cannot write twice: status changes (idempotent) and
 * creates that carry a `key`.
 *
 * @example
 *   const harpoon = createHarpoonClient({ urls: ['http://127.0.0.1:8100', 'http://127.0.0.1:8101'], token });
 *   const { event } = await harpoon.createEvent({ type: 'create', region: 'nyc1', droplet_id: 7, key: 'droplet-7-create' });
 *   await harpoon.setStatus(event.id, { status: 'running' });
 *   const sub = harpoon.subscribe({ region: ['nyc1'], cursor: 0, onChange: (c) => console.log(c.cursor, c.event.status) });
 *   … sub.close();
 */
import { request, type ClientRequest } from 'node:http';
import { createSseParser } from '../lib/sse/parser.ts';
import type { ActionJson, ActionListJson } from '../contracts/droplet-api.ts';
import type { Change, CreateEventInput, CreateResult, EventStatus, EventType, HarpoonEvent, StatusChangeInput, StatusResult } from './types.ts';

export type { Change, CreateEventInput, CreateResult, HarpoonEvent, StatusResult } from './types.ts';

export interface HarpoonClientOptions {
  /** One replica's base URL, or several: requests and streams fail over between them in order. */
  urls: string | string[];
  /** A service token Harpoon is configured with. */
  token: string;
  /** Attempts per call over all replicas, 429 retries included (default 6). */
  attempts?: number;
  /** Longest pause between stream reconnects (default 2000 ms; the first retry is at once). */
  maxReconnectMs?: number;
  fetch?: typeof fetch;
}

/** A refusal from Harpoon: `code` is a HARPOON_ERR_* (or HTTP_ERR_*) from runbooks/errors.md. */
export class HarpoonClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HarpoonClientError';
  }
}

export type ItemError = { error: { code: string; message: string } };

export interface EventQuery {
  region?: string[];
  type?: EventType[];
  status?: EventStatus[];
  unscheduled?: boolean;
  serverId?: number;
}

/** GET /v1/events only (the stream has no droplet filter). */
export interface ListQuery extends EventQuery {
  dropletId?: number;
  after?: number;
  limit?: number;
}

export interface SubscribeOptions extends EventQuery {
  /** Start after this cursor (0: from the first change). Absent: from now. */
  cursor?: number;
  /** Called once per change, in cursor order, never twice for one cursor. */
  onChange(change: Change): void;
  /** The stream's position moved without a matching change (an idle heartbeat). */
  onCursor?(cursor: number): void;
  onConnect?(url: string): void;
  /** A connection failed or ended; the subscription reconnects by itself. */
  onDisconnect?(err: Error | undefined): void;
  /**
   * The cursor is older than what Harpoon's log keeps (HARPOON_ERR_CURSOR_TOO_OLD: 410, or an `event: too-old`
   * frame): the subscription stops, since resuming would skip changes. Read the state again (followEvents) and
   * subscribe from that read's cursor. Without this handler, onDisconnect gets the error and the subscription stops.
   */
  onTooOld?(err: HarpoonClientError): void;
}

export interface Subscription {
  /** The last cursor received: what the next connection resumes from. */
  cursor(): number | undefined;
  connected(): boolean;
  close(): void;
}

function filterQuery(q: EventQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.region?.length) p.set('region', q.region.join(','));
  if (q.type?.length) p.set('type', q.type.join(','));
  if (q.status?.length) p.set('status', q.status.join(','));
  if (q.unscheduled) p.set('unscheduled', 'true');
  if (q.serverId !== undefined) p.set('server_id', String(q.serverId));
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createHarpoonClient(options: HarpoonClientOptions) {
  const urls = (Array.isArray(options.urls) ? options.urls : [options.urls]).map((u) => u.replace(/\/+$/, ''));
  if (urls.length === 0) throw new TypeError('createHarpoonClient needs at least one URL');
  const attempts = options.attempts ?? 6;
  const doFetch = options.fetch ?? fetch;
  let preferred = 0;

  async function send<T>(method: string, path: string, body: unknown, retryBroken: boolean): Promise<{ status: number; json: T }> {
    let last: Error | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const base = urls[preferred % urls.length]!;
      let res: Response;
      try {
        res = await doFetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${options.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (err) {
        last = err as Error;
        const refused = /ECONNREFUSED/.test(String((err as { cause?: unknown }).cause ?? err));
        if (!refused && !retryBroken) throw err;
        preferred++;
        continue;
      }
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = { code: 'HARPOON_ERR_INTERNAL', message: text.slice(0, 200) };
      }
      if (res.status === 429) {
        last = new HarpoonClientError(429, 'HARPOON_ERR_BACKPRESSURE', (json as { message?: string }).message ?? 'saturated');
        await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000 * (0.5 + Math.random() / 2));
        continue;
      }
      if (res.status === 503) {
        last = new HarpoonClientError(503, (json as { code?: string }).code ?? 'HARPOON_ERR_UNAVAILABLE', (json as { message?: string }).message ?? '');
        preferred++;
        await sleep(50 * attempt);
        continue;
      }
      if (res.status >= 400) {
        const e = json as { code?: string; message?: string };
        throw new HarpoonClientError(res.status, e.code ?? 'HARPOON_ERR_INTERNAL', e.message ?? `HTTP ${res.status}`);
      }
      return { status: res.status, json: json as T };
    }
    throw last ?? new Error('no attempt made');
  }

  return {
    /** POST /v1/events: one event. A `key` makes retries and repeats return the same event. */
    async createEvent(input: CreateEventInput): Promise<CreateResult> {
      return (await send<CreateResult>('POST', '/v1/events', input, Boolean(input.key))).json;
    },
    /** POST /v1/events with `{ events }` (1–500): committed in one transaction; per-item results in order. */
    async createEvents(inputs: CreateEventInput[]): Promise<Array<CreateResult | ItemError>> {
      const keyed = inputs.every((i) => Boolean(i.key));
      return (await send<{ events: Array<CreateResult | ItemError> }>('POST', '/v1/events', { events: inputs }, keyed)).json.events;
    },
    /** POST /v1/events/:id/status. Repeating a change is harmless (`changed: false`). */
    async setStatus(id: number, change: Omit<StatusChangeInput, 'id'>): Promise<StatusResult> {
      return (await send<StatusResult>('POST', `/v1/events/${id}/status`, change, true)).json;
    },
    /** POST /v1/events/status: many changes in one request (1–500). */
    async setStatuses(changes: StatusChangeInput[]): Promise<Array<(StatusResult & { id: number }) | (ItemError & { id: number })>> {
      return (await send<{ results: Array<(StatusResult & { id: number }) | (ItemError & { id: number })> }>('POST', '/v1/events/status', { changes }, true)).json.results;
    },
    async getEvent(id: number): Promise<HarpoonEvent> {
      return (await send<{ event: HarpoonEvent }>('GET', `/v1/events/${id}`, undefined, true)).json.event;
    },
    /** GET /v2/actions/:id, the shape Cloud serves. */
    async getAction(id: number): Promise<ActionJson> {
      return (await send<{ action: ActionJson }>('GET', `/v2/actions/${id}`, undefined, true)).json.action;
    },
    /**
     * GET /v2/actions or /v2/droplets/:id/actions (`path` with its page query). With a customer's
     * API token as the client's token, only that customer's actions, exactly as Cloud lists them.
     */
    async listActions(path: string): Promise<ActionListJson> {
      if (!/^\/v2\/(actions|droplets\/[0-9]+\/actions)(\?[A-Za-z0-9_=&]*)?$/.test(path)) throw new TypeError(`not an action list path: ${path}`);
      return (await send<ActionListJson>('GET', path, undefined, true)).json;
    },
    /** GET /v1/events: a page in id order, and the cursor to stream from afterwards. */
    async listEvents(query: ListQuery = {}): Promise<{ events: HarpoonEvent[]; next_after: number | null; cursor: number }> {
      const p = filterQuery(query);
      if (query.dropletId !== undefined) p.set('droplet_id', String(query.dropletId));
      if (query.after !== undefined) p.set('after', String(query.after));
      if (query.limit !== undefined) p.set('limit', String(query.limit));
      const qs = p.toString();
      return (await send<{ events: HarpoonEvent[]; next_after: number | null; cursor: number }>('GET', `/v1/events${qs ? `?${qs}` : ''}`, undefined, true)).json;
    },
    /**
     * GET /v1/stream, resumed after any disconnect from the last cursor
     * received (Last-Event-ID), on the next replica if this one is gone.
     */
    subscribe(sub: SubscribeOptions): Subscription {
      let cursor = sub.cursor;
      let closed = false;
      let current: ClientRequest | undefined;
      let live = false;
      let failures = 0;
      let index = preferred;
      const maxWait = options.maxReconnectMs ?? 2000;

      function connect(): void {
        if (closed) return;
        const base = urls[index % urls.length]!;
        const p = filterQuery(sub);
        if (cursor !== undefined) p.set('cursor', String(cursor));
        const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${options.token}` };
        if (cursor !== undefined) headers['last-event-id'] = String(cursor);
        const req = request(`${base}/v1/stream?${p}`, { headers, agent: false });
        current = req;
        let ended = false;
        const retry = (err?: Error) => {
          if (ended) return;
          ended = true;
          live = false;
          if (closed) return;
          sub.onDisconnect?.(err);
          failures++;
          index++;
          const wait = failures <= 1 ? 0 : Math.min(maxWait, 50 * 2 ** Math.min(failures, 6));
          setTimeout(connect, wait).unref?.();
        };
        const tooOld = (message: string) => {
          if (ended) return;
          ended = true;
          live = false;
          closed = true;
          req.destroy();
          const err = new HarpoonClientError(410, 'HARPOON_ERR_CURSOR_TOO_OLD', message);
          if (sub.onTooOld) sub.onTooOld(err);
          else sub.onDisconnect?.(err);
        };
        req.on('error', retry);
        req.on('response', (res) => {
          if (res.statusCode === 410) {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => {
              let message = 'stream answered 410';
              try {
                message = (JSON.parse(body) as { message?: string }).message ?? message;
              } catch {
                // not JSON: the status says enough
              }
              tooOld(message);
            });
            return;
          }
          if (res.statusCode !== 200) {
            res.resume();
            res.on('end', () => retry(new HarpoonClientError(res.statusCode ?? 0, 'HARPOON_ERR_STREAM', `stream answered ${res.statusCode}`)));
            return;
          }
          live = true;
          failures = 0;
          sub.onConnect?.(base);
          const parser = createSseParser((m) => {
            if (m.event === 'too-old') {
              let message = 'the stream cursor is older than what Harpoon keeps';
              try {
                message = (JSON.parse(m.data) as { message?: string }).message ?? message;
              } catch {
                // keep the generic message
              }
              tooOld(message);
              return;
            }
            const id = m.id !== undefined && /^\d+$/.test(m.id) ? Number(m.id) : undefined;
            if (id === undefined) return;
            if (m.event === 'cursor') {
              if (cursor === undefined || id > cursor) {
                cursor = id;
                sub.onCursor?.(id);
              }
              return;
            }
            if (cursor !== undefined && id <= cursor) return; // never twice
            cursor = id;
            sub.onChange(JSON.parse(m.data) as Change);
          });
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => parser.push(chunk));
          res.on('error', (err) => retry(err));
          res.on('close', () => retry());
        });
        req.end();
      }

      connect();
      return {
        cursor: () => cursor,
        connected: () => live,
        close() {
          closed = true;
          current?.destroy();
        },
      };
    },
  };
}

export type HarpoonClient = ReturnType<typeof createHarpoonClient>;
