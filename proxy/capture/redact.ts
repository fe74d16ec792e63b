import { createHash } from 'node:crypto';

/** Headers whose values are credentials, whatever their content. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-auth-token', 'x-csrf-token']);
/** Other names that look like credentials (headers, query parameters, JSON fields). */
const SECRET_NAME = /(^|[-_])(token|secret|password|passwd|api[-_]?key|session|credential|private[-_]?key|signature)s?($|[-_])/i;
/** Not worth keeping: they describe one connection, or the proxy sets them again. */
const DROPPED_HEADERS = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'x-request-id', 'expect']);

const REDACTED = /\[REDACTED(?::([0-9a-f]{6,64}))?\]/;

/**
 * A short, stable alias of a secret: the first 12 hex digits of its SHA-256.
 * The same token always gets the same alias (so a replay can keep each
 * customer's requests together and map them to a token of its own), and
 * the alias does not reveal the token.
 */
export function secretAlias(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}

function redactValue(name: string, value: string): string {
  if (name === 'authorization' || name === 'proxy-authorization') {
    const m = /^(\w+) +(.+)$/.exec(value);
    if (m) return `${m[1]} [REDACTED:${secretAlias(m[2]!.trim())}]`;
  }
  return `[REDACTED:${secretAlias(value)}]`;
}

export function isSecretName(name: string): boolean {
  return SECRET_HEADERS.has(name) || SECRET_NAME.test(name);
}

/**
 * Request headers as a capture keeps them: lower-case names, one string
 * each, per-connection headers dropped, credentials replaced by
 * `[REDACTED:<alias>]` (an Authorization keeps its scheme).
 */
export function redactHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [rawName, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    const name = rawName.toLowerCase();
    if (DROPPED_HEADERS.has(name) || name.startsWith('x-forwarded-')) continue;
    const value = Array.isArray(raw) ? raw.join(name === 'cookie' ? '; ' : ', ') : raw;
    out[name] = isSecretName(name) ? redactValue(name, value) : value;
  }
  return out;
}

/** The path with credential-like query parameters (`?access_token=…`) redacted. */
export function redactPath(path: string): string {
  const q = path.indexOf('?');
  if (q === -1) return path;
  const params = new URLSearchParams(path.slice(q + 1));
  let changed = false;
  for (const [k, v] of [...params]) {
    if (isSecretName(k)) {
      params.set(k, `[REDACTED:${secretAlias(v)}]`);
      changed = true;
    }
  }
  return changed ? `${path.slice(0, q)}?${params.toString()}` : path;
}

function redactJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactJson);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, isSecretName(k) && typeof v !== 'object' ? '[REDACTED]' : redactJson(v)]));
  }
  return value;
}

/**
 * A JSON body with credential-like fields (`password`, `api_key`, …)
 * replaced by `[REDACTED]`; other bodies are returned as they are.
 */
export function redactBody(body: string, contentType: string | undefined): string {
  if (!contentType || !/\bjson\b/i.test(contentType)) return body;
  try {
    return JSON.stringify(redactJson(JSON.parse(body)));
  } catch {
    return body;
  }
}

/** Replacement tokens for a replay: by alias (from a token map file), else one for all. */
export interface TokenSource {
  byAlias?: Record<string, string>;
  fallback?: string;
}

/**
 * Puts real credentials back into a captured header value:
 * `Bearer [REDACTED:3f9a…]` becomes `Bearer <token>`, with the token the map
 * gives for that alias, else the fallback. Undefined when there is none
 * (the caller drops the header).
 */
export function restoreSecret(value: string, tokens: TokenSource): string | undefined {
  const m = REDACTED.exec(value);
  if (!m) return value;
  const token = (m[1] !== undefined ? tokens.byAlias?.[m[1]] : undefined) ?? tokens.byAlias?.['*'] ?? tokens.fallback;
  if (token === undefined) return undefined;
  return value.replace(REDACTED, token);
}

export function isRedacted(value: string): boolean {
  return REDACTED.test(value);
}
