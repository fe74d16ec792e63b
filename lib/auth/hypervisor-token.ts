import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HypervisorKeyRing } from './hypervisor-keys.ts';

/**
 * Hypervisor tokens: `hv.<kid>.<serverId>.<issued>.<expires>.<mac>`, where
 * mac is the base64url HMAC-SHA256 of `hv:<kid>:<id>:<region>:<issued>:<expires>`
 * under the key `kid` names (lib/auth/hypervisor-keys.ts). The region is
 * inside the MAC, so a token names one hypervisor in one region; the key id
 * lets a rotated key sign new tokens while the old one is still accepted;
 * `expires` bounds a stolen token's life and `issued` lets one host's
 * tokens be revoked without touching the others'. Times are Unix seconds.
 */
const TOKEN_RE = /^hv\.([0-9a-f]{8})\.([1-9][0-9]{0,9})\.([0-9]{1,12})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$/;
/** Default life of a token: a day (the fleet mints afresh when it starts). */
export const DEFAULT_TOKEN_TTL_S = 24 * 3600;

function mac(key: string, kid: string, serverId: number, region: string, issued: number, expires: number): Buffer {
  return createHmac('sha256', key).update(`hv:${kid}:${serverId}:${region}:${issued}:${expires}`).digest();
}

/**
 * Signs with the ring's first key not retired.
 *
 * @example
 *   mintHypervisorToken(ring, 17, 'nyc1') // 'hv.3fa2c1d0.17.1796600000.1796686400.q2…'
 */
export function mintHypervisorToken(ring: HypervisorKeyRing, serverId: number, region: string, options: { ttlSeconds?: number; now?: Date } = {}): string {
  if (!Number.isSafeInteger(serverId) || serverId < 1) throw new RangeError(`serverId must be a positive integer, got ${serverId}`);
  const signer = ring.keys.find((k) => !k.retired_at);
  if (!signer) throw new RangeError('the hypervisor key ring has no key that is not retired; rotate to add one');
  const issued = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const expires = issued + (options.ttlSeconds ?? DEFAULT_TOKEN_TTL_S);
  return `hv.${signer.kid}.${serverId}.${issued}.${expires}.${mac(signer.key, signer.kid, serverId, region, issued, expires).toString('base64url')}`;
}

/** The server id a well-formed token claims, before any check of its MAC; undefined when malformed. */
export function tokenServerId(token: string): number | undefined {
  const m = TOKEN_RE.exec(token);
  if (!m) return undefined;
  const id = Number(m[2]);
  return Number.isSafeInteger(id) ? id : undefined;
}

export type HypervisorTokenVerdict = 'ok' | 'malformed' | 'unknown-key' | 'retired-key' | 'bad-mac' | 'expired' | 'revoked';

/**
 * Checks a token for `serverId` in `region` against the ring: a key that is
 * there and not retired, a MAC that matches (constant-time), not expired,
 * not issued before the host's revocation.
 */
export function checkHypervisorToken(ring: HypervisorKeyRing, token: string, serverId: number, region: string, now = new Date()): HypervisorTokenVerdict {
  const m = TOKEN_RE.exec(token);
  if (!m || Number(m[2]) !== serverId) return 'malformed';
  const key = ring.keys.find((k) => k.kid === m[1]);
  if (!key) return 'unknown-key';
  const issued = Number(m[3]);
  const expires = Number(m[4]);
  // Compared as text: decoding would ignore the last character's spare bits, so two spellings would pass.
  const given = Buffer.from(m[5]!, 'utf8');
  const expected = Buffer.from(mac(key.key, key.kid, serverId, region, issued, expires).toString('base64url'), 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad-mac';
  if (key.retired_at) return 'retired-key';
  if (expires * 1000 <= now.getTime()) return 'expired';
  const revokedAt = ring.revoked[String(serverId)];
  if (revokedAt !== undefined && issued * 1000 < Date.parse(revokedAt)) return 'revoked';
  return 'ok';
}

/** True when `token` is valid for `serverId` in `region` now. */
export function verifyHypervisorToken(ring: HypervisorKeyRing, token: string, serverId: number, region: string, now = new Date()): boolean {
  return checkHypervisorToken(ring, token, serverId, region, now) === 'ok';
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
