import { describe, expect, it } from 'vitest';
import { freshKeyRing, newHypervisorKey, type HypervisorKeyRing } from '../../../lib/auth/hypervisor-keys.ts';
import { bearerToken, checkHypervisorToken, DEFAULT_TOKEN_TTL_S, mintHypervisorToken, tokenServerId, verifyHypervisorToken } from '../../../lib/auth/hypervisor-token.ts';

const T0 = new Date('2026-12-01T00:00:00Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

describe('hypervisor tokens (lib/auth/hypervisor-token.ts)', () => {
  it('a minted token is valid for its host and region only, and names its key, issue time and expiry', () => {
    const ring = freshKeyRing();
    const token = mintHypervisorToken(ring, 17, 'nyc1', { now: T0 });
    const [, kid, id, issued, expires, mac] = token.split('.');
    expect(token.startsWith('hv.')).toBe(true);
    expect(kid).toBe(ring.keys[0]!.kid);
    expect(id).toBe('17');
    expect(Number(issued)).toBe(T0.getTime() / 1000);
    expect(Number(expires) - Number(issued)).toBe(DEFAULT_TOKEN_TTL_S);
    expect(DEFAULT_TOKEN_TTL_S).toBe(86_400);
    expect(mac).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(checkHypervisorToken(ring, token, 17, 'nyc1', at(1))).toBe('ok');
    expect(verifyHypervisorToken(ring, token, 17, 'nyc1', at(1))).toBe(true);
    expect(checkHypervisorToken(ring, token, 18, 'nyc1', at(1))).toBe('malformed');
    expect(checkHypervisorToken(ring, token, 17, 'ams3', at(1))).toBe('bad-mac');
    expect(verifyHypervisorToken(ring, token, 17, 'ams3', at(1))).toBe(false);
    expect(tokenServerId(token)).toBe(17);
  });

  it('the MAC covers every field: changing any of them, or one character of the MAC, is refused', () => {
    const ring = freshKeyRing();
    const token = mintHypervisorToken(ring, 17, 'nyc1', { now: T0, ttlSeconds: 600 });
    const parts = token.split('.');
    const forged = (i: number, v: string) => parts.map((p, j) => (j === i ? v : p)).join('.');
    expect(checkHypervisorToken(ring, forged(3, String(Number(parts[3]) - 1)), 17, 'nyc1', at(1))).toBe('bad-mac');
    expect(checkHypervisorToken(ring, forged(4, String(Number(parts[4]) + 3600)), 17, 'nyc1', at(1))).toBe('bad-mac');
    const mac = parts[5]!;
    const flipped = (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1);
    expect(checkHypervisorToken(ring, forged(5, flipped), 17, 'nyc1', at(1))).toBe('bad-mac');
    // Another spelling of the same bytes (spare bits of the last character) is refused too.
    const last = mac[42]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(checkHypervisorToken(ring, forged(5, mac.slice(0, 42) + sibling), 17, 'nyc1', at(1))).toBe('bad-mac');
    // A MAC made with another key of the same id.
    const other: HypervisorKeyRing = { ...ring, keys: [{ ...newHypervisorKey(), kid: ring.keys[0]!.kid }] };
    expect(checkHypervisorToken(other, token, 17, 'nyc1', at(1))).toBe('bad-mac');
  });

  it('is refused when malformed in any field, with an unknown key, or when its key is retired', () => {
    const ring = freshKeyRing();
    const token = mintHypervisorToken(ring, 17, 'nyc1', { now: T0 });
    for (const bad of ['', 'x' + token, token + 'x', token.replace('hv.', 'hx.'), token.toUpperCase(), ` ${token}`, token.slice(0, -1)]) {
      expect(checkHypervisorToken(ring, bad, 17, 'nyc1', at(1))).toBe('malformed');
      expect(tokenServerId(bad)).toBeUndefined();
    }
    expect(checkHypervisorToken(freshKeyRing(), token, 17, 'nyc1', at(1))).toBe('unknown-key');
    const retired: HypervisorKeyRing = { ...ring, keys: [{ ...ring.keys[0]!, retired_at: T0.toISOString() }] };
    expect(checkHypervisorToken(retired, token, 17, 'nyc1', at(1))).toBe('retired-key');
  });

  it('signs with the first key not retired, and refuses to mint without one or for a bad host id', () => {
    const ring = freshKeyRing();
    const fresh = newHypervisorKey();
    const rotated: HypervisorKeyRing = { ...ring, keys: [{ ...ring.keys[0]!, retired_at: T0.toISOString() }, fresh] };
    const token = mintHypervisorToken(rotated, 3, 'nyc1', { now: T0 });
    expect(token.split('.')[1]).toBe(fresh.kid);
    expect(checkHypervisorToken(rotated, token, 3, 'nyc1', at(1))).toBe('ok');
    expect(() => mintHypervisorToken({ ...ring, keys: [{ ...ring.keys[0]!, retired_at: T0.toISOString() }] }, 3, 'nyc1')).toThrow(/no key that is not retired/);
    for (const id of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2]) expect(() => mintHypervisorToken(ring, id, 'nyc1')).toThrow(RangeError);
    expect(() => mintHypervisorToken(ring, 0, 'nyc1')).toThrow('serverId must be a positive integer, got 0');
    expect(mintHypervisorToken(ring, 1, 'nyc1').split('.')[2]).toBe('1');
  });

  it('expires at its expiry, to the second', () => {
    const ring = freshKeyRing();
    const token = mintHypervisorToken(ring, 17, 'nyc1', { now: T0, ttlSeconds: 60 });
    expect(checkHypervisorToken(ring, token, 17, 'nyc1', new Date(T0.getTime() + 59_999))).toBe('ok');
    expect(checkHypervisorToken(ring, token, 17, 'nyc1', at(60))).toBe('expired');
  });

  it('a revocation refuses the host\'s tokens issued before it, not those issued at or after it, nor other hosts\'', () => {
    const ring = freshKeyRing();
    const before = mintHypervisorToken(ring, 17, 'nyc1', { now: T0 });
    const same = mintHypervisorToken(ring, 17, 'nyc1', { now: at(10) });
    const other = mintHypervisorToken(ring, 18, 'nyc1', { now: T0 });
    const revoked: HypervisorKeyRing = { ...ring, revoked: { '17': at(10).toISOString() } };
    expect(checkHypervisorToken(revoked, before, 17, 'nyc1', at(20))).toBe('revoked');
    expect(checkHypervisorToken(revoked, same, 17, 'nyc1', at(20))).toBe('ok');
    expect(checkHypervisorToken(revoked, other, 18, 'nyc1', at(20))).toBe('ok');
  });

  it('bearerToken reads one Bearer token and nothing else', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer   abc  ')).toBe('abc');
    expect(bearerToken('Bearer abc def')).toBeUndefined();
    expect(bearerToken('Bearerabc')).toBeUndefined();
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('xBearer abc')).toBeUndefined();
    expect(bearerToken(['Bearer abc'])).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});
