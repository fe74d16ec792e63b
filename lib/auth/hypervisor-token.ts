import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Hypervisor tokens: `hv.<serverId>.<mac>`, where mac is the base64url
 * HMAC-SHA256 of `server:<id>:<region>` under a shared secret. The region
 * is inside the MAC, so a token names one hypervisor in one region and
 * nothing else; the server id is in clear so a verifier can find which
 * region to check it against. Nothing is stored: any process that knows
 * the secret can mint and verify.
 */
const PREFIX = 'hv';
const TOKEN_RE = /^hv\.([1-9][0-9]{0,9})\.([A-Za-z0-9_-]{43})$/;

function mac(secret: string, serverId: number, region: string): Buffer {
  return createHmac('sha256', secret).update(`server:${serverId}:${region}`).digest();
}

/**
 * @example
 *   mintHypervisorToken(secret, 17, 'nyc1') // 'hv.17.3q2…'
 */
export function mintHypervisorToken(secret: string, serverId: number, region: string): string {
  if (!Number.isSafeInteger(serverId) || serverId < 1) throw new RangeError(`serverId must be a positive integer, got ${serverId}`);
  return `${PREFIX}.${serverId}.${mac(secret, serverId, region).toString('base64url')}`;
}

/** The server id a well-formed token claims, before any check of its MAC; undefined when malformed. */
export function tokenServerId(token: string): number | undefined {
  const m = TOKEN_RE.exec(token);
  if (!m) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

/**
 * True when `token` was minted with `secret` for `serverId` in `region`.
 * The MAC comparison is constant-time.
 */
export function verifyHypervisorToken(secret: string, token: string, serverId: number, region: string): boolean {
  const m = TOKEN_RE.exec(token);
  if (!m || Number(m[1]) !== serverId) return false;
  const given = Buffer.from(m[2]!, 'base64url');
  const expected = mac(secret, serverId, region);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
