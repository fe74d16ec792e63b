import { describe, expect, it } from 'vitest';
import { ADMIN_SCOPES, adminTokenDigest, createAdminTokenVerifier, MIN_ADMIN_TOKEN_LENGTH } from '../../../lib/auth/admin-token.ts';

const OPERATOR = 'operator-token-0123456789';
const FOLLOWER = 'follower-token-0123456789';
const T0 = new Date('2026-12-01T00:00:00Z');

describe('admin tokens (lib/auth/admin-token.ts)', () => {
  it('a bare token holds every scope; a scoped one only its own; the actor is the token\'s name', () => {
    const v = createAdminTokenVerifier({ alice: OPERATOR, followers: { token: FOLLOWER, scopes: ['read'] } });
    const alice = v.authenticate(`Bearer ${OPERATOR}`);
    expect(alice).toEqual({ ok: true, actor: 'alice', scopes: new Set(ADMIN_SCOPES) });
    expect(ADMIN_SCOPES).toEqual(['read', 'operate', 'lockdown', 'explain', 'placements']);
    const followers = v.authenticate(`bearer  ${FOLLOWER}  `);
    expect(followers).toEqual({ ok: true, actor: 'followers', scopes: new Set(['read']) });
    expect(v.describe()).toEqual([
      { name: 'alice', scopes: [...ADMIN_SCOPES], expires_at: null },
      { name: 'followers', scopes: ['read'], expires_at: null },
    ]);
  });

  it('refuses a missing, malformed, unknown or expired token, each with its reason', () => {
    const v = createAdminTokenVerifier({ alice: OPERATOR, old: { token: FOLLOWER, scopes: ['operate'], expiresAt: T0 } });
    expect(v.authenticate(undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(v.authenticate('')).toEqual({ ok: false, reason: 'missing' });
    for (const bad of [OPERATOR, `Basic ${OPERATOR}`, `Bearer${OPERATOR}`, `Bearer ${OPERATOR} x`, `x Bearer ${OPERATOR}`, `Bearer ${'a'.repeat(513)}`]) {
      expect(v.authenticate(bad)).toEqual({ ok: false, reason: 'malformed' });
    }
    expect(v.authenticate(`Bearer ${'a'.repeat(512)}`)).toEqual({ ok: false, reason: 'invalid' });
    expect(v.authenticate(`Bearer ${OPERATOR}x`)).toEqual({ ok: false, reason: 'invalid' });
    expect(v.authenticate(`Bearer ${OPERATOR.slice(1)}`)).toEqual({ ok: false, reason: 'invalid' });
    expect(v.authenticate(`Bearer ${FOLLOWER}`, new Date(T0.getTime() - 1))).toMatchObject({ ok: true, actor: 'old' });
    expect(v.authenticate(`Bearer ${FOLLOWER}`, T0)).toEqual({ ok: false, reason: 'expired' });
    expect(v.describe()[1]).toEqual({ name: 'old', scopes: ['operate'], expires_at: T0.toISOString() });
  });

  it('a verifier handed only a digest accepts the token it was made from', () => {
    const v = createAdminTokenVerifier({ operator: { sha256: adminTokenDigest(OPERATOR), scopes: ['explain'] } });
    expect(adminTokenDigest(OPERATOR)).toMatch(/^[0-9a-f]{64}$/);
    expect(v.authenticate(`Bearer ${OPERATOR}`)).toEqual({ ok: true, actor: 'operator', scopes: new Set(['explain']) });
    // The digest itself is not a token.
    expect(v.authenticate(`Bearer ${adminTokenDigest(OPERATOR)}`)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('when two names share a token, the first one named is the actor', () => {
    const v = createAdminTokenVerifier({ first: OPERATOR, second: { token: OPERATOR, scopes: ['read'] } });
    expect(v.authenticate(`Bearer ${OPERATOR}`)).toMatchObject({ ok: true, actor: 'first' });
  });

  it('validates the map once: errors name the option, never echo a token', () => {
    const map = /option "tokens" must be a map of at least one name → admin token, got "\(not shown\)"/;
    const token = (name: string) => new RegExp(`option "tokens\\.${name}" must be a token of at least 16 printable characters without spaces, got "\\(not shown\\)"`);
    const scopes = /option "tokens\.alice\.scopes" must be a non-empty list of read, operate, lockdown, explain, placements/;
    const date = /option "tokens\.alice\.expiresAt" must be a Date/;
    const name = (n: string) => new RegExp(`option "tokens\\.${n}" must be a name of letters, digits and \\. _ @ - \\(at most 64\\)`);
    const bad: Array<[unknown, RegExp]> = [
      [{}, map],
      [null, map],
      [OPERATOR, map],
      [{ 'bad name': OPERATOR }, name('bad name')],
      [{ '-x': OPERATOR }, name('-x')],
      [{ ['a'.repeat(65)]: OPERATOR }, name('a{65}')],
      [{ alice: 'x'.repeat(MIN_ADMIN_TOKEN_LENGTH - 1) }, token('alice')],
      [{ alice: `${OPERATOR} with space` }, token('alice')],
      [{ alice: null }, token('alice')],
      [{ alice: { token: OPERATOR, scopes: [] } }, scopes],
      [{ alice: { token: OPERATOR, scopes: ['read', 'root'] } }, scopes],
      [{ alice: { token: OPERATOR, scopes: 'read' } }, scopes],
      [{ alice: { token: OPERATOR, scopes: ['read'], expiresAt: '2026-12-01' } }, date],
      [{ alice: { token: OPERATOR, scopes: ['read'], expiresAt: new Date(Number.NaN) } }, date],
      [{ alice: { scopes: ['read'] } }, token('alice')],
      [{ alice: { sha256: 'AB'.repeat(32), scopes: ['read'] } }, /option "tokens\.alice\.sha256" must be the token's SHA-256 as 64 lowercase hex digits/],
      [{ alice: { sha256: OPERATOR, scopes: ['read'] } }, /option "tokens\.alice\.sha256"/],
    ];
    for (const [tokens, message] of bad) {
      let error: Error | undefined;
      try {
        createAdminTokenVerifier(tokens as never);
      } catch (e) {
        error = e as Error;
      }
      expect(error?.message, JSON.stringify(tokens)).toMatch(message);
      expect(error?.message).not.toContain(OPERATOR);
    }
    expect(() => createAdminTokenVerifier({ 'a.b_c@d-e9': 'x'.repeat(MIN_ADMIN_TOKEN_LENGTH), ['a'.repeat(64)]: OPERATOR }, 'cutover.tokens')).not.toThrow();
    expect(() => createAdminTokenVerifier({}, 'cutover.tokens')).toThrow(/cutover\.tokens/);
  });
});
