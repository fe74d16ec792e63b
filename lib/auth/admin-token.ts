import { createHash, timingSafeEqual } from 'node:crypto';
import { invalidOption } from '../errors.ts';

/**
 * Admin tokens with scopes, for the cutover admin API and anything else an
 * operator drives. A follower (router, Scheduler V2, dashboard) needs to
 * read the plan's state and nothing more, so the token it is handed must
 * not be able to move the plan; the steps with side effects on the
 * database (lockdown's GRANT/REVOKE) need a scope of their own.
 *
 * - `read`: state, status, plan, history (followers, dashboard, `cutover status`).
 * - `operate`: advance, rollback, pause, resume of features without side effects.
 * - `lockdown`: advance or rollback of a feature whose step has a side effect (with `operate`).
 * - `explain`: Scheduler V2's `POST /explain`; which hosts hold a customer's droplets stays hidden.
 * - `placements`: where customers' droplets are: `/explain` with `customer_id` honoured, `GET /decisions/:id`.
 *
 * A token given as a bare string holds every scope: that is the operator's
 * own token. Hand anything else `{ token, scopes: ['read'] }`. A service that
 * only checks tokens (Scheduler V2) can be handed `{ sha256, scopes }`, the
 * token's digest (adminTokenDigest): it then holds nothing it could call with.
 */
export type AdminScope = 'read' | 'operate' | 'lockdown' | 'explain' | 'placements';
export const ADMIN_SCOPES: readonly AdminScope[] = ['read', 'operate', 'lockdown', 'explain', 'placements'];

export type ScopedAdminToken = ({ token: string } | { sha256: string }) & {
  scopes: readonly AdminScope[];
  /** After this instant the token is refused (rotation: hand out the new one, let the old expire). */
  expiresAt?: Date;
};

/** token name (the actor recorded in the history) → its token. */
export type AdminTokenSpecs = Record<string, string | ScopedAdminToken>;

export const MIN_ADMIN_TOKEN_LENGTH = 16;
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
// The bound stops a megabyte header from being hashed.
const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;

export type AdminAuthResult =
  | { ok: true; actor: string; scopes: ReadonlySet<AdminScope> }
  | { ok: false; reason: 'missing' | 'malformed' | 'invalid' | 'expired' };

export interface AdminTokenVerifier {
  /** Checks an `Authorization` header; every configured digest is compared whatever matched, so timing tells nothing. */
  authenticate(header: string | undefined, now?: Date): AdminAuthResult;
  /** Token names and their scopes (never the tokens), for logs and `cutover status`. */
  describe(): Array<{ name: string; scopes: AdminScope[]; expires_at: string | null }>;
}

interface Entry {
  name: string;
  digest: Buffer;
  scopes: ReadonlySet<AdminScope>;
  expiresAt: Date | undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
const HEX_DIGEST = /^[0-9a-f]{64}$/;

/**
 * The digest a verifier compares against (hex SHA-256), to hand a checking
 * service `{ sha256, scopes }` instead of the token itself.
 *
 * @example
 *   createSchedulerV2({ …, tokens: { operator: { sha256: adminTokenDigest(operatorToken), scopes: ['explain', 'placements'] } } });
 */
export function adminTokenDigest(token: string): string {
  return sha256(token).toString('hex');
}

/**
 * Validates the token map once (errors name the token, never echo it).
 *
 * @example
 *   const verifier = createAdminTokenVerifier({ alice: aliceToken, followers: { token: followerToken, scopes: ['read'] } });
 *   const auth = verifier.authenticate(req.headers.authorization);
 *   if (auth.ok && auth.scopes.has('operate')) …
 */
export function createAdminTokenVerifier(tokens: AdminTokenSpecs, option = 'tokens'): AdminTokenVerifier {
  if (typeof tokens !== 'object' || tokens === null || Object.keys(tokens).length === 0) {
    throw invalidOption(option, '(not shown)', 'a map of at least one name → admin token');
  }
  const entries: Entry[] = Object.entries(tokens).map(([name, spec]) => {
    if (!TOKEN_NAME.test(name)) throw invalidOption(`${option}.${name}`, name, 'a name of letters, digits and . _ @ - (at most 64)');
    const digest = typeof spec === 'object' && spec !== null && 'sha256' in spec ? spec.sha256 : undefined;
    const token = typeof spec === 'string' ? spec : spec !== null && typeof spec === 'object' && 'token' in spec ? spec.token : undefined;
    if (digest !== undefined) {
      if (typeof digest !== 'string' || !HEX_DIGEST.test(digest)) throw invalidOption(`${option}.${name}.sha256`, '(not shown)', 'the token\'s SHA-256 as 64 lowercase hex digits (adminTokenDigest)');
    } else if (typeof token !== 'string' || token.length < MIN_ADMIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
      throw invalidOption(`${option}.${name}`, '(not shown)', `a token of at least ${MIN_ADMIN_TOKEN_LENGTH} printable characters without spaces`);
    }
    const scopes = typeof spec === 'string' ? ADMIN_SCOPES : spec.scopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || scopes.some((s) => !ADMIN_SCOPES.includes(s))) {
      throw invalidOption(`${option}.${name}.scopes`, scopes, `a non-empty list of ${ADMIN_SCOPES.join(', ')}`);
    }
    const expiresAt = typeof spec === 'string' ? undefined : spec.expiresAt;
    if (expiresAt !== undefined && !(expiresAt instanceof Date && Number.isFinite(expiresAt.getTime()))) {
      throw invalidOption(`${option}.${name}.expiresAt`, String(expiresAt), 'a Date');
    }
    return { name, digest: digest !== undefined ? Buffer.from(digest, 'hex') : sha256(token!), scopes: new Set(scopes), expiresAt };
  });
  return {
    authenticate(header, now = new Date()) {
      if (header === undefined || header === '') return { ok: false, reason: 'missing' };
      const m = BEARER.exec(header);
      if (!m) return { ok: false, reason: 'malformed' };
      const given = sha256(m[1]!);
      let found: Entry | undefined;
      for (const e of entries) {
        if (timingSafeEqual(given, e.digest) && found === undefined) found = e;
      }
      if (!found) return { ok: false, reason: 'invalid' };
      if (found.expiresAt && found.expiresAt.getTime() <= now.getTime()) return { ok: false, reason: 'expired' };
      return { ok: true, actor: found.name, scopes: found.scopes };
    },
    describe() {
      return entries.map((e) => ({ name: e.name, scopes: [...e.scopes], expires_at: e.expiresAt?.toISOString() ?? null }));
    },
  };
}
