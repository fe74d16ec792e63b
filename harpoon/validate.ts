/**
 * Request bodies and query strings to typed inputs, or a 4xx naming the
 * bad field. Everything is checked before anything is queued, so a refused
 * request writes nothing.
 */
import { EVENT_STATUSES, EVENT_TYPES } from '../domain/events.ts';
import { harpoonError } from './errors.ts';
import type { CreateEventInput, EventStatus, EventType, StatusChangeInput } from './types.ts';

export const MAX_BATCH = 500;
const MAX_ARGS_BYTES = 8 * 1024;
const MAX_UINT = 4_294_967_295;
const SLUG = /^[a-z0-9-]{1,32}$/;
const KEY = /^[\x21-\x7e]{1,64}$/;
const CREATE_FIELDS = new Set(['type', 'region', 'droplet_id', 'customer_id', 'server_id', 'args', 'message', 'key']);
const CHANGE_FIELDS = new Set(['status', 'server_id', 'message']);

function invalid(message: string) {
  return harpoonError('HARPOON_ERR_VALIDATION', message);
}

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function unknownFields(x: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(x)) if (!allowed.has(key)) throw invalid(`${where} has an unknown field ${shown(key)}; allowed: ${[...allowed].join(', ')}`);
}

function optionalId(x: Record<string, unknown>, field: string, where: string): number | null | undefined {
  const v = x[field];
  if (v === undefined || v === null) return v as null | undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_UINT) throw invalid(`${where}.${field} must be a positive integer, got ${shown(v)}`);
  return v;
}

function optionalMessage(x: Record<string, unknown>, where: string): string | null | undefined {
  const v = x.message;
  if (v === undefined || v === null) return v as null | undefined;
  if (typeof v !== 'string' || v.length > 255) throw invalid(`${where}.message must be a string of at most 255 characters`);
  return v;
}

/** The status values a change may name. */
export function isStatus(v: unknown): v is EventStatus {
  return typeof v === 'string' && (EVENT_STATUSES as readonly string[]).includes(v);
}

export function isType(v: unknown): v is EventType {
  return typeof v === 'string' && (EVENT_TYPES as readonly string[]).includes(v);
}

function createItem(x: unknown, where: string): CreateEventInput {
  if (!isObject(x)) throw invalid(`${where} must be an object with at least "type" and "region"`);
  unknownFields(x, CREATE_FIELDS, where);
  if (!isType(x.type)) throw invalid(`${where}.type must be one of ${EVENT_TYPES.join(', ')}, got ${shown(x.type)}`);
  if (typeof x.region !== 'string' || !SLUG.test(x.region)) throw invalid(`${where}.region must be a region slug such as "nyc1", got ${shown(x.region)}`);
  const item: CreateEventInput = { type: x.type, region: x.region };
  for (const field of ['droplet_id', 'customer_id', 'server_id'] as const) {
    const id = optionalId(x, field, where);
    if (id !== undefined) item[field] = id;
  }
  if (x.args !== undefined && x.args !== null) {
    if (!isObject(x.args)) throw invalid(`${where}.args must be a JSON object`);
    if (Buffer.byteLength(JSON.stringify(x.args)) > MAX_ARGS_BYTES) throw invalid(`${where}.args is over ${MAX_ARGS_BYTES} bytes as JSON`);
    if (x.args.size !== undefined && (typeof x.args.size !== 'string' || !SLUG.test(x.args.size))) {
      throw invalid(`${where}.args.size must be a size slug such as "s-1vcpu-1gb", got ${shown(x.args.size)}`);
    }
    item.args = x.args;
  }
  const message = optionalMessage(x, where);
  if (message !== undefined) item.message = message;
  if (x.key !== undefined && x.key !== null) {
    if (typeof x.key !== 'string' || !KEY.test(x.key)) throw invalid(`${where}.key must be 1 to 64 printable ASCII characters without spaces`);
    item.key = x.key;
  }
  return item;
}

/** `{ …event }` or `{ "events": [ … ] }` (1 to 500 items). */
export function parseCreateBody(body: unknown): { items: CreateEventInput[]; batch: boolean } {
  if (isObject(body) && 'events' in body) {
    for (const key of Object.keys(body)) if (key !== 'events') throw invalid(`unknown field ${shown(key)} next to "events"`);
    if (!Array.isArray(body.events) || body.events.length < 1 || body.events.length > MAX_BATCH) {
      throw invalid(`"events" must be an array of 1 to ${MAX_BATCH} events`);
    }
    const items = body.events.map((e, i) => createItem(e, `events[${i}]`));
    const keys = new Set<string>();
    for (const [i, item] of items.entries()) {
      if (!item.key) continue;
      if (keys.has(item.key)) throw invalid(`events[${i}].key repeats a key used earlier in the same batch`);
      keys.add(item.key);
    }
    return { items, batch: true };
  }
  return { items: [createItem(body, 'the body')], batch: false };
}

function changeItem(x: unknown, where: string, id: number | undefined): StatusChangeInput {
  if (!isObject(x)) throw invalid(`${where} must be an object with "status" and/or "server_id"`);
  unknownFields(x, id === undefined ? new Set([...CHANGE_FIELDS, 'id']) : CHANGE_FIELDS, where);
  let eventId = id;
  if (eventId === undefined) {
    const v = optionalId(x, 'id', where);
    if (v === undefined || v === null) throw invalid(`${where}.id must be the event's id`);
    eventId = v;
  }
  const change: StatusChangeInput = { id: eventId };
  if (x.status !== undefined) {
    if (!isStatus(x.status)) throw invalid(`${where}.status must be one of ${EVENT_STATUSES.join(', ')}, got ${shown(x.status)}`);
    change.status = x.status;
  }
  const server = optionalId(x, 'server_id', where);
  if (server === null) throw invalid(`${where}.server_id cannot be null: an event is never unplaced`);
  if (server !== undefined) change.server_id = server;
  const message = optionalMessage(x, where);
  if (message !== undefined) change.message = message;
  if (change.status === undefined && change.server_id === undefined) throw invalid(`${where} needs "status", "server_id" or both`);
  return change;
}

/** POST /v1/events/:id/status. */
export function parseStatusBody(body: unknown, id: number): StatusChangeInput {
  return changeItem(body, 'the body', id);
}

/** POST /v1/events/status: `{ "changes": [ { "id", "status"?, "server_id"?, "message"? }, … ] }`. */
export function parseStatusBatch(body: unknown): StatusChangeInput[] {
  if (!isObject(body) || !Array.isArray(body.changes)) throw invalid('the body must be { "changes": [ { "id", "status" }, … ] }');
  for (const key of Object.keys(body)) if (key !== 'changes') throw invalid(`unknown field ${shown(key)} next to "changes"`);
  if (body.changes.length < 1 || body.changes.length > MAX_BATCH) throw invalid(`"changes" must hold 1 to ${MAX_BATCH} changes`);
  return body.changes.map((c, i) => changeItem(c, `changes[${i}]`, undefined));
}

/** An id in a path: digits only, or 404 (an id that cannot exist is simply not found). */
export function parsePathId(raw: string | undefined, what: string): number {
  const id = raw !== undefined && /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id)) throw harpoonError('HARPOON_ERR_NOT_FOUND', `${what} ${shown(raw)} not found: ids are positive integers`);
  return id;
}

function badQuery(message: string) {
  return harpoonError('HARPOON_ERR_INVALID_QUERY', message);
}

/** Reads a query string against the allowed names: repeated or unknown parameters are refused. */
export function queryParams(query: URLSearchParams, allowed: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of query) {
    if (!allowed.includes(k)) throw badQuery(`unknown query parameter ${shown(k)}; allowed: ${allowed.join(', ') || 'none'}`);
    if (out.has(k)) throw badQuery(`query parameter "${k}" is repeated`);
    out.set(k, v);
  }
  return out;
}

export function intParam(params: Map<string, string>, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  const n = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw badQuery(`${name} must be an integer from ${min} to ${max}, got ${shown(raw)}`);
  return n;
}

/** What a subscriber or a list asks for. Empty sets mean "any". */
export interface EventFilter {
  regions: Set<string>;
  types: Set<EventType>;
  statuses: Set<EventStatus>;
  /** Only creates not placed yet (what Scheduler V2 needs). */
  unscheduled: boolean;
  serverId?: number;
  /** One droplet's events (GET /v1/events only: Cloud's "is a destroy in flight?" check). */
  dropletId?: number;
}

/** region=nyc1,sfo1 type=create,reboot status=pending unscheduled=true server_id=7 */
export function parseFilter(params: Map<string, string>): EventFilter {
  const list = (name: string) => (params.get(name) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const regions = list('region');
  for (const r of regions) if (!SLUG.test(r)) throw badQuery(`region must be region slugs separated by commas, got ${shown(r)}`);
  const types = list('type');
  for (const t of types) if (!isType(t)) throw badQuery(`type must be among ${EVENT_TYPES.join(', ')}, got ${shown(t)}`);
  const statuses = list('status');
  for (const s of statuses) if (!isStatus(s)) throw badQuery(`status must be among ${EVENT_STATUSES.join(', ')}, got ${shown(s)}`);
  const raw = params.get('unscheduled');
  if (raw !== undefined && raw !== 'true' && raw !== 'false' && raw !== '1' && raw !== '0') throw badQuery('unscheduled must be true or false');
  const serverId = intParam(params, 'server_id', 1, MAX_UINT);
  const dropletId = intParam(params, 'droplet_id', 1, MAX_UINT);
  return {
    regions: new Set(regions),
    types: new Set(types as EventType[]),
    statuses: new Set(statuses as EventStatus[]),
    unscheduled: raw === 'true' || raw === '1',
    ...(serverId === undefined ? {} : { serverId }),
    ...(dropletId === undefined ? {} : { dropletId }),
  };
}

/** True when the event passes the filter. */
export function matches(filter: EventFilter, e: { region: string; type: EventType; status: EventStatus; server_id: number | null; droplet_id?: number | null }): boolean {
  if (filter.regions.size > 0 && !filter.regions.has(e.region)) return false;
  if (filter.types.size > 0 && !filter.types.has(e.type)) return false;
  if (filter.statuses.size > 0 && !filter.statuses.has(e.status)) return false;
  if (filter.unscheduled && (e.type !== 'create' || e.server_id !== null)) return false;
  if (filter.serverId !== undefined && e.server_id !== filter.serverId) return false;
  if (filter.dropletId !== undefined && e.droplet_id !== filter.dropletId) return false;
  return true;
}
