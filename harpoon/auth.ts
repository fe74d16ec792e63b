import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { invalidOption } from '../lib/errors.ts';
import { harpoonError } from './errors.ts';

/** Who is calling: a service (by its token's name) or a customer (by the API token Cloud issued). */
export type Caller = { kind: 'service'; name: string } | { kind: 'customer'; id: number };

/**
 * What a service token may do. Cloud creates events and reads actions
 * (create, read); a router takes the stream and marks events running/done
 * (stream, execute, read); Scheduler V2 takes the stream and places events
 * (stream, place, read); replicas push to each other (peer). A token given
 * as a bare string holds every scope (tests, a single-service setup).
 */
export type HarpoonScope = 'create' | 'read' | 'stream' | 'place' | 'execute' | 'peer';
export const HARPOON_SCOPES: readonly HarpoonScope[] = ['create', 'read', 'stream', 'place', 'execute', 'peer'];
/**
 * `region` binds a token to one region's events (a router's): its stream and list must ask for that
 * region only, and it may read and change only that region's events (403, nothing written, otherwise).
 */
export type ServiceTokenSpec = string | { token: string; scopes: readonly HarpoonScope[]; region?: string };
const REGION = /^[a-z0-9][a-z0-9-]{0,31}$/;

const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;
const TOKEN_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
export const MIN_SERVICE_TOKEN_LENGTH = 16;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Bearer authentication. Service tokens (name → token, from options) may
 * call everything; any other bearer is looked up as a customer API token
 * by its SHA-256 (as Cloud stores them) and may only read its own actions.
 * Every service token is compared in constant time whatever matched.
 */
export function createAuthenticator(tokens: Record<string, ServiceTokenSpec>, findCustomer: (sha256Hex: string) => Promise<{ id: number; status: string } | undefined>) {
  if (typeof tokens !== 'object' || tokens === null || Object.keys(tokens).length === 0) {
    throw invalidOption('tokens', '(not shown)', 'a map of at least one service name → bearer token');
  }
  const digests = Object.entries(tokens).map(([name, spec]) => {
    if (!TOKEN_NAME.test(name)) throw invalidOption(`tokens.${name}`, name, 'a name of letters, digits and . _ @ - (at most 64)');
    const token = typeof spec === 'string' ? spec : spec?.token;
    if (typeof token !== 'string' || token.length < MIN_SERVICE_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
      throw invalidOption(`tokens.${name}`, '(not shown)', `a token of at least ${MIN_SERVICE_TOKEN_LENGTH} printable characters without spaces`);
    }
    const scopes = typeof spec === 'string' ? HARPOON_SCOPES : spec.scopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || scopes.some((x) => !HARPOON_SCOPES.includes(x))) {
      throw invalidOption(`tokens.${name}.scopes`, scopes, `a non-empty list of ${HARPOON_SCOPES.join(', ')}`);
    }
    const region = typeof spec === 'string' ? undefined : spec.region;
    if (region !== undefined && (typeof region !== 'string' || !REGION.test(region))) throw invalidOption(`tokens.${name}.region`, region, 'a region slug such as "nyc1"');
    return { name, digest: digest(token), scopes: new Set<HarpoonScope>(scopes), region };
  });
  const scopesByName = new Map(digests.map((d) => [d.name, d.scopes]));
  const regionByName = new Map(digests.flatMap((d) => (d.region === undefined ? [] : [[d.name, d.region] as const])));

  function bearer(req: IncomingMessage): string {
    const header = req.headers.authorization;
    if (header === undefined || header === '') throw harpoonError('HARPOON_ERR_UNAUTHORIZED', 'send a token as "Authorization: Bearer <token>"');
    const m = BEARER.exec(header);
    if (!m) throw harpoonError('HARPOON_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"');
    return m[1]!;
  }

  function serviceName(token: string): string | undefined {
    const given = digest(token);
    let name: string | undefined;
    for (const t of digests) if (timingSafeEqual(given, t.digest) && name === undefined) name = t.name;
    return name;
  }

  return {
    /** A service token holding `scope` (when given), or 401/403. */
    service(req: IncomingMessage, scope?: HarpoonScope): string {
      const name = serviceName(bearer(req));
      if (name === undefined) throw harpoonError('HARPOON_ERR_UNAUTHORIZED', 'the service token is not valid');
      if (scope !== undefined) this.require(name, scope);
      return name;
    },
    /** 403 (nothing done) unless the named service token holds `scope`. */
    require(name: string, scope: HarpoonScope, what: string = scope): void {
      const scopes = scopesByName.get(name);
      if (!scopes?.has(scope)) {
        throw harpoonError('HARPOON_ERR_FORBIDDEN', `the token "${name}" may not ${what} (it holds ${[...(scopes ?? [])].join(', ')}); nothing was written`);
      }
    },
    tokenHolds: (name: string, scope: HarpoonScope): boolean => scopesByName.get(name)?.has(scope) ?? false,
    /** The region the named token is bound to (a router's), or undefined for a token of every region. */
    regionOf: (name: string): string | undefined => regionByName.get(name),
    /** 403 (nothing done) unless a region-bound token's request names its own region and no other. */
    requireRegions(name: string, regions: ReadonlySet<string>, what: string): void {
      const own = regionByName.get(name);
      if (own === undefined) return;
      if (regions.size !== 1 || !regions.has(own)) {
        throw harpoonError('HARPOON_ERR_FORBIDDEN', `the token "${name}" is bound to region ${own}: ${what} must ask for region=${own} only (asked: ${regions.size === 0 ? 'every region' : [...regions].join(', ')}); nothing was done`);
      }
    },
    /** The first token holding `scope`, for a replica's own calls (its peers). */
    tokenWith(scope: HarpoonScope): string | undefined {
      for (const [name, spec] of Object.entries(tokens)) {
        if (scopesByName.get(name)?.has(scope)) return typeof spec === 'string' ? spec : spec.token;
      }
      return undefined;
    },
    /** A service token, or a customer's API token (looked up), or 401/403. */
    async any(req: IncomingMessage): Promise<Caller> {
      const token = bearer(req);
      const name = serviceName(token);
      if (name !== undefined) {
        this.require(name, 'read');
        // Actions span every region: a token bound to one (a router's) reads none.
        if (regionByName.has(name)) throw harpoonError('HARPOON_ERR_FORBIDDEN', `the token "${name}" is bound to region ${regionByName.get(name)}; actions span every region; nothing was read`);
        return { kind: 'service', name };
      }
      const customer = await findCustomer(createHash('sha256').update(token).digest('hex'));
      if (!customer) throw harpoonError('HARPOON_ERR_UNAUTHORIZED', 'the token is neither a service token nor a valid API token');
      if (customer.status !== 'active') throw harpoonError('HARPOON_ERR_FORBIDDEN', `this account is ${customer.status}, not active; contact support`);
      return { kind: 'customer', id: customer.id };
    },
  };
}

export type Authenticator = ReturnType<typeof createAuthenticator>;
