import { cloudError } from './errors.ts';
import { quote } from '../lib/errors.ts';

/**
 * Cloud's request validation, by hand: the API is small, and a schema
 * library would be the only dependency it has. Every failure names the
 * field, and nothing here touches the database, so bad input writes nothing.
 */

/** What POST /v2/droplets accepts, after validation. */
export interface CreateDropletRequest {
  name: string;
  region: string;
  size: string;
  image: string;
  ssh_keys: number[];
  /** Names of the optional features asked for, in a stable order. */
  features: DropletFeature[];
}

/** The boolean request fields that become `droplet_features` rows. */
export const DROPLET_FEATURES = ['backups', 'ipv6', 'monitoring', 'private_networking'] as const;
export type DropletFeature = (typeof DROPLET_FEATURES)[number];

const CREATE_FIELDS = ['name', 'region', 'size', 'image', 'ssh_keys', ...DROPLET_FEATURES] as const;

/** The action types a customer may ask for; the rest of EVENT_TYPES are the platform's own. */
export const ACTION_TYPES = ['reboot', 'power_off', 'power_on'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** More keys than any customer has; the bound keeps one request's IN list small. */
export const MAX_SSH_KEYS = 32;
export const MAX_PER_PAGE = 200;
export const DEFAULT_PER_PAGE = 20;
// Deep pages cost MySQL a scan of every row before them; nobody has this many droplets.
const MAX_PAGE = 100_000;
/** Action lists take Harpoon's bound, so the two answer a deep page alike behind the proxy's shadow. */
export const ACTION_MAX_PAGE = 1_000_000;
/** `droplets.id` is INT UNSIGNED; `events.id` is BIGINT UNSIGNED, read as a JS number. */
const MAX_ID = { droplet: 4_294_967_295, action: Number.MAX_SAFE_INTEGER } as const;

const HOSTNAME_CHARS = /^[A-Za-z0-9.-]+$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const DECIMAL = /^[1-9][0-9]{0,15}$/;

function invalid(field: string, message: string) {
  return cloudError('CLOUD_ERR_VALIDATION', `${field}: ${message}`);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('body', `must be a JSON object, got ${typeName(body)}`);
  }
  return body as Record<string, unknown>;
}

function rejectUnknown(body: Record<string, unknown>, accepted: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !accepted.includes(k));
  if (unknown.length === 0) return;
  const names = unknown.slice(0, 5).map(quote).join(', ');
  throw invalid(unknown[0]!, `unknown field${unknown.length > 1 ? 's' : ''} ${names}; accepted fields are ${accepted.join(', ')}`);
}

function requiredString(body: Record<string, unknown>, field: string, hint: string): string {
  const value = body[field];
  if (value === undefined) throw invalid(field, `is required (${hint})`);
  if (typeof value !== 'string') throw invalid(field, `must be a string (${hint}), got ${typeName(value)}`);
  if (value === '') throw invalid(field, `must not be empty (${hint})`);
  return value;
}

function optionalBoolean(body: Record<string, unknown>, field: string): boolean {
  const value = body[field];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalid(field, `must be true or false, got ${typeName(value)}`);
  return value;
}

/**
 * A hostname as RFC 1123 has it: the characters the brief allows, at most
 * 255 of them, in dot-separated labels of 1–63 that neither start nor end
 * with a hyphen. The hypervisor writes this name into the guest, so
 * anything else would fail there, later and less clearly.
 */
export function isValidHostname(name: string): boolean {
  return name.length <= 255 && HOSTNAME_CHARS.test(name) && name.split('.').every((label) => LABEL.test(label));
}

/**
 * Validates a POST /v2/droplets body.
 *
 * @example
 *   parseCreateDroplet({ name: 'web-1', region: 'nyc1', size: '1gb', image: 'ubuntu-16-04-x64', ipv6: true })
 *   // => { name: 'web-1', …, ssh_keys: [], features: ['ipv6'] }
 */
export function parseCreateDroplet(input: unknown): CreateDropletRequest {
  const body = asObject(input);
  rejectUnknown(body, CREATE_FIELDS);
  const name = requiredString(body, 'name', 'a hostname such as "web-1"');
  if (!isValidHostname(name)) {
    throw invalid(
      'name',
      `${quote(name)} is not a valid hostname: use letters, digits, "-" and "." (labels of 1-63 characters not starting or ending with "-", 255 in all)`,
    );
  }
  const region = requiredString(body, 'region', 'a region slug such as "nyc1"');
  const size = requiredString(body, 'size', 'a size slug such as "1gb"');
  const image = requiredString(body, 'image', 'an image slug such as "ubuntu-16-04-x64"');
  const sshKeys = body.ssh_keys;
  let ssh_keys: number[] = [];
  if (sshKeys !== undefined) {
    if (!Array.isArray(sshKeys)) throw invalid('ssh_keys', `must be an array of SSH key ids, got ${typeName(sshKeys)}`);
    if (sshKeys.length > MAX_SSH_KEYS) throw invalid('ssh_keys', `at most ${MAX_SSH_KEYS} keys, got ${sshKeys.length}`);
    sshKeys.forEach((id, i) => {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
        throw invalid(`ssh_keys[${i}]`, `must be a positive integer SSH key id, got ${quote(id)}`);
      }
    });
    // Sending a key twice means the same thing as sending it once.
    ssh_keys = [...new Set(sshKeys as number[])];
  }
  const features = DROPLET_FEATURES.filter((f) => optionalBoolean(body, f));
  return { name, region, size, image, ssh_keys, features };
}

/**
 * Validates a POST /v2/droplets/:id/actions body.
 *
 * @example
 *   parseActionRequest({ type: 'reboot' }) // => 'reboot'
 */
export function parseActionRequest(input: unknown): ActionType {
  const body = asObject(input);
  rejectUnknown(body, ['type']);
  const type = requiredString(body, 'type', `one of ${ACTION_TYPES.join(', ')}`);
  if (!(ACTION_TYPES as readonly string[]).includes(type)) {
    throw invalid('type', `${quote(type)} is not an action this API performs; use one of ${ACTION_TYPES.join(', ')}`);
  }
  return type as ActionType;
}

/**
 * A path id. Anything that is not a positive integer in range cannot name
 * a row, so it is answered exactly like a missing row: 404.
 */
export function parseId(raw: string | undefined, what: keyof typeof MAX_ID): number {
  const id = raw !== undefined && DECIMAL.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id > MAX_ID[what]) {
    throw cloudError('CLOUD_ERR_NOT_FOUND', `${what} ${quote(raw)} not found: ${what} ids are positive integers`);
  }
  return id;
}

export interface Page {
  page: number;
  perPage: number;
}

/**
 * `page` and `per_page` for GET /v2/droplets. Unknown parameters are
 * refused rather than ignored: a filter this API does not implement
 * (`tag_name`, say) must not silently return everything.
 */
export function parsePagination(query: URLSearchParams, maxPage = MAX_PAGE): Page {
  const allowed = ['page', 'per_page'];
  for (const key of new Set(query.keys())) {
    if (!allowed.includes(key)) {
      throw cloudError('CLOUD_ERR_INVALID_QUERY', `unknown query parameter ${quote(key)}; accepted are page and per_page`);
    }
    if (query.getAll(key).length > 1) throw cloudError('CLOUD_ERR_INVALID_QUERY', `query parameter ${key} is given more than once`);
  }
  const read = (key: string, fallback: number, max: number): number => {
    const raw = query.get(key);
    if (raw === null) return fallback;
    const n = DECIMAL.test(raw) ? Number(raw) : NaN;
    if (!(n >= 1 && n <= max)) {
      throw cloudError('CLOUD_ERR_INVALID_QUERY', `${key} must be an integer from 1 to ${max}, got ${quote(raw)}`);
    }
    return n;
  };
  return { page: read('page', 1, maxPage), perPage: read('per_page', DEFAULT_PER_PAGE, MAX_PER_PAGE) };
}
