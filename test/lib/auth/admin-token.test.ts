import { describe, expect, it } from 'vitest';
import { ADMIN_SCOPES, createAdminTokenVerifier, MIN_ADMIN_TOKEN_LENGTH } from '../../../lib/auth/admin-token.ts';

const OPERATOR = 'operator-token-0123456789';
const FOLLOWER = 'follower-token-0123456789';
const T0 = new Date('2026-12-01T00:00:00Z');

describe('admin tokens (lib/auth/admin-token.ts)', () => {
  it('a bare token holds every scope; a scoped one only its own; the actor is the token\'s name', () => {
    const v = createAdminTokenVerifier({ alice: OPERATOR, followers: { token: FOLLOWER, scopes: ['read'] } });
    const alice = v.authenticate(`Bearer ${OPERATOR}`);
    expect(alice).toEqual({ ok: true, actor: 'alice', scopes: new Set(ADMIN_SCOPES) });
    expect(ADMIN_SCOPES).toEqual(['read', 'operate', 'lockdown']);
    const followers = v.authenticate(`bearer  ${FOLLOWER}  `);
    expect(followers).toEqual({ ok: true, actor: 'followers', scopes: new Set(['read']) });
    expect(v.describe()).toEqual([
      { name: 'alice', scopes: ['read', 'operate', 'lockdown'], expires_at: null },
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

  it('when two names share a token, the first one named is the actor', () => {
    const v = createAdminTokenVerifier({ first: OPERATOR, second: { token: OPERATOR, scopes: ['read'] } });
    expect(v.authenticate(`Bearer ${OPERATOR}`)).toMatchObject({ ok: true, actor: 'first' });
  });

  it('validates the map once: errors name the option, never echo a token', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{}, /tokens/],
      [null, /tokens/],
      [{ 'bad name': OPERATOR }, /tokens\.bad name/],
      [{ '-x': OPERATOR }, /tokens\.-x/],
      [{ ['a'.repeat(65)]: OPERATOR }, /tokens\.a{65}/],
      [{ alice: 'x'.repeat(MIN_ADMIN_TOKEN_LENGTH - 1) }, /tokens\.alice/],
      [{ alice: `${OPERATOR} with space` }, /tokens\.alice/],
      [{ alice: { token: OPERATOR, scopes: [] } }, /tokens\.alice\.scopes/],
      [{ alice: { token: OPERATOR, scopes: ['read', 'root'] } }, /tokens\.alice\.scopes/],
      [{ alice: { token: OPERATOR, scopes: 'read' } }, /tokens\.alice\.scopes/],
      [{ alice: { token: OPERATOR, scopes: ['read'], expiresAt: '2026-12-01' } }, /tokens\.alice\.expiresAt/],
      [{ alice: { token: OPERATOR, scopes: ['read'], expiresAt: new Date(Number.NaN) } }, /tokens\.alice\.expiresAt/],
      [{ alice: { scopes: ['read'] } }, /tokens\.alice/],
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
