import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminScope, AdminTokenVerifier } from '../lib/auth/admin-token.ts';
import { readJsonBody } from '../lib/http/json-body.ts';
import { sendJson } from '../lib/http/respond.ts';
import { createRouter, type Router } from '../lib/http/router.ts';
import { schedulerError } from './errors.ts';
import type { FilterId, SizeSpec } from './filters.ts';
import type { HostVerdict, RankOutcome } from './rank.ts';
import { isPolicy, POLICY_IDS, type PolicyId } from './scorers.ts';

/** A hypothetical request for POST /explain. */
export interface ExplainInput {
  /** Region slug ("nyc1") or id. */
  region: string | number;
  /** Size slug ("2gb") or an explicit `{ slug, memory (MB), vcpus, disk (GB) }`. */
  size: string | SizeSpec;
  /** Makes hosts already holding this customer's droplets the fallback, as V1 did. */
  customer_id?: number;
  /** Score with another policy than the replica's. */
  policy?: PolicyId;
  /** Include every host's verdict (filter that rejected it, or its score). */
  hosts?: boolean;
  /** How many ranked hosts to list (default 10, at most 1000). */
  top?: number;
}

export interface ExplainResult {
  outcome: RankOutcome;
  policy: PolicyId;
  region: { id: number; slug: string };
  size: SizeSpec;
  chosen: { server_id: number; name: string; score: number; fallback: boolean } | null;
  summary: string;
  hosts_total: number;
  hosts_available: number;
  rejected: Partial<Record<FilterId, number>>;
  ranked: Array<{ server_id: number; name: string; score: number; fallback: boolean }>;
  hosts?: HostVerdict[];
  max_staleness_ms: number;
  /**
   * With a `customer_id`: `shown` when the ranking used which hosts hold that customer's droplets
   * (a token with the `placements` scope, or an in-process call), `hidden` when it ranked as for a
   * customer with no droplets (a token with `explain` only).
   */
  customer_placements?: 'shown' | 'hidden';
}

/** What the caller of explain may see. */
export interface ExplainAccess {
  /** Whether the ranking may use (and so reveal) which hosts hold the request's customer's droplets. */
  placements: boolean;
}

const EXPLAIN_FIELDS = new Set(['region', 'size', 'customer_id', 'policy', 'hosts', 'top']);
const SIZE_FIELDS = new Set(['slug', 'memory', 'vcpus', 'disk']);
const BODY_LIMIT = 16 * 1024;

const invalid = (message: string) => schedulerError('SCHEDULER_ERR_VALIDATION', message);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/**
 * Validates the body of POST /explain: unknown fields, wrong types and
 * out-of-range numbers are refused with SCHEDULER_ERR_VALIDATION (422),
 * naming the field.
 */
export function parseExplainInput(body: unknown): ExplainInput {
  if (!isObject(body)) throw invalid('the body must be a JSON object like {"region": "nyc1", "size": "2gb"}');
  for (const key of Object.keys(body)) {
    if (!EXPLAIN_FIELDS.has(key)) throw invalid(`unknown field "${key.slice(0, 64)}"; allowed: ${[...EXPLAIN_FIELDS].join(', ')}`);
  }
  const { region, size, customer_id, policy, hosts, top } = body;
  if (!(typeof region === 'string' && region.length > 0 && region.length <= 32) && !isCount(region, 2 ** 31)) {
    throw invalid('"region" is required: a region slug (string) or id (integer)');
  }
  let parsedSize: string | SizeSpec;
  if (typeof size === 'string' && size.length > 0 && size.length <= 32) {
    parsedSize = size;
  } else if (isObject(size)) {
    for (const key of Object.keys(size)) if (!SIZE_FIELDS.has(key)) throw invalid(`unknown field "size.${key.slice(0, 64)}"; allowed: slug, memory, vcpus, disk`);
    const { slug, memory, vcpus, disk } = size;
    if (!isCount(memory, 16 * 1024 * 1024) || !isCount(vcpus, 1024) || !isCount(disk, 1024 * 1024)) {
      throw invalid('"size" as an object needs integer "memory" (MB), "vcpus" and "disk" (GB), each >= 0');
    }
    if (slug !== undefined && (typeof slug !== 'string' || slug.length > 32)) throw invalid('"size.slug" must be a string of at most 32 characters');
    parsedSize = { slug: (slug as string | undefined) ?? 'custom', memory, vcpus, disk } as SizeSpec;
  } else {
    throw invalid('"size" is required: a size slug such as "2gb", or {"memory": MB, "vcpus": n, "disk": GB}');
  }
  if (customer_id !== undefined && !(isCount(customer_id, 2 ** 31) && (customer_id as number) > 0)) throw invalid('"customer_id" must be a positive integer');
  if (policy !== undefined && !isPolicy(policy)) throw invalid(`"policy" must be one of ${POLICY_IDS.join(', ')}`);
  if (hosts !== undefined && typeof hosts !== 'boolean') throw invalid('"hosts" must be true or false');
  if (top !== undefined && !isCount(top, 1000)) throw invalid('"top" must be an integer from 0 to 1000');
  return {
    region: region as string | number,
    size: parsedSize,
    ...(customer_id === undefined ? {} : { customer_id: customer_id as number }),
    ...(policy === undefined ? {} : { policy: policy as PolicyId }),
    ...(hosts === undefined ? {} : { hosts: hosts as boolean }),
    ...(top === undefined ? {} : { top: top as number }),
  };
}

const AUTH_MESSAGES = {
  missing: 'send an admin token with the "explain" scope as "Authorization: Bearer <token>" (the operator\'s STRANGLER_ADMIN_TOKEN holds it)',
  malformed: 'the Authorization header must be "Bearer <token>"',
  invalid: 'the admin token is not valid on this replica',
  expired: 'the admin token has expired (rotated out); use the current one',
} as const;

/** The token's scopes, or 401/403 before anything is read; without a verifier (no `tokens` option) every request is 401. */
function authorize(req: IncomingMessage, verifier: AdminTokenVerifier | undefined, scope: AdminScope): ReadonlySet<AdminScope> {
  if (!verifier) throw schedulerError('SCHEDULER_ERR_UNAUTHORIZED', 'this replica was started without admin tokens (the tokens option, SCHEDULER_V2_TOKENS): it answers no /explain or /decisions');
  const auth = verifier.authenticate(req.headers.authorization);
  if (!auth.ok) throw schedulerError('SCHEDULER_ERR_UNAUTHORIZED', AUTH_MESSAGES[auth.reason]);
  if (!auth.scopes.has(scope)) {
    throw schedulerError('SCHEDULER_ERR_FORBIDDEN', `the token "${auth.actor}" lacks the "${scope}" scope (it holds ${[...auth.scopes].join(', ')}); nothing was read`);
  }
  return auth.scopes;
}

/**
 * At most `limit` explains at once: a slot, or 429 with Retry-After (the
 * request is not queued). `observer` sees the count and each refusal (metrics).
 */
export function createExplainLimiter(limit: number, retryAfterSeconds: number, observer?: { running(n: number): void; busy(): void }) {
  let running = 0;
  return {
    async run<T>(res: ServerResponse, fn: () => Promise<T>): Promise<T> {
      if (running >= limit) {
        observer?.busy();
        res.setHeader('retry-after', String(retryAfterSeconds));
        throw schedulerError('SCHEDULER_ERR_EXPLAIN_BUSY', `this replica already answers ${running} /explain requests (its limit, explainConcurrency); retry in ${retryAfterSeconds} s`);
      }
      observer?.running(++running);
      try {
        return await fn();
      } finally {
        observer?.running(--running);
      }
    },
  };
}

/**
 * POST /explain (a hypothetical request; writes nothing; admin scope
 * `explain`, and `placements` to rank with the customer's own hosts) and
 * GET /decisions/:event_id (the stored decisions of one event; scope
 * `placements`, since a decision names the host of a customer's droplet).
 * Explains run beside placement, at most `explainConcurrency` at once.
 */
export function createSchedulerRouter(deps: {
  explain(input: ExplainInput, access: ExplainAccess): Promise<ExplainResult>;
  decisions(eventId: number): Promise<unknown[]>;
  verifier: AdminTokenVerifier | undefined;
  limiter: ReturnType<typeof createExplainLimiter>;
}): Router {
  return createRouter()
    .add('POST', '/explain', async ({ req, res }) => {
      const scopes = authorize(req, deps.verifier, 'explain');
      // The body is read before a slot is taken: a client sending it slowly holds no slot.
      const input = parseExplainInput(await readJsonBody(req, { limit: BODY_LIMIT }));
      sendJson(res, 200, await deps.limiter.run(res, () => deps.explain(input, { placements: scopes.has('placements') })));
    })
    .add('GET', '/decisions/:event_id', async ({ req, res, params }) => {
      authorize(req, deps.verifier, 'placements');
      const id = params.event_id!;
      if (!/^[1-9][0-9]{0,18}$/.test(id)) throw invalid('event_id must be a positive integer');
      const rows = await deps.decisions(Number(id));
      if (rows.length === 0) throw schedulerError('SCHEDULER_ERR_NOT_FOUND', `no decision stored for event ${id}`);
      sendJson(res, 200, { event_id: Number(id), decisions: rows });
    });
}
