import type { IncomingMessage } from 'node:http';
import type { Knex } from 'knex';
import { sha256 } from '../stack/seed/generate.ts';
import { cloudError } from './errors.ts';

/** The authenticated caller: every query a handler runs is scoped to `id`. */
export interface Customer {
  id: number;
  droplet_limit: number;
}

// Real tokens are ~50 characters; the bound stops a megabyte header from being hashed.
const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;

/** The bearer token of a request that authenticate() accepted (Harpoon's customer-scoped reads take the same token). */
export function bearerToken(req: IncomingMessage): string {
  const match = BEARER.exec(req.headers.authorization ?? '');
  if (!match) throw cloudError('CLOUD_ERR_UNAUTHORIZED', 'send your API token as "Authorization: Bearer <token>"');
  return match[1]!;
}

/**
 * Resolves `Authorization: Bearer <token>` to its customer. Only the
 * token's SHA-256 is stored, so the lookup is by digest; the token itself
 * is never logged or kept.
 *
 * @example
 *   const customer = await authenticate(db, req); // throws CLOUD_ERR_UNAUTHORIZED (401)
 */
export async function authenticate(db: Knex, req: IncomingMessage): Promise<Customer> {
  const header = req.headers.authorization;
  if (header === undefined || header === '') {
    throw cloudError('CLOUD_ERR_UNAUTHORIZED', 'send your API token as "Authorization: Bearer <token>"');
  }
  const match = BEARER.exec(header);
  if (!match) {
    throw cloudError('CLOUD_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"');
  }
  const row = (await db('customers')
    .where({ api_token_sha256: sha256(match[1]!) })
    .first('id', 'droplet_limit', 'status')) as { id: number; droplet_limit: number; status: string } | undefined;
  if (!row) throw cloudError('CLOUD_ERR_UNAUTHORIZED', 'the API token is not valid; check it or generate a new one');
  if (row.status !== 'active') {
    throw cloudError('CLOUD_ERR_ACCOUNT_INACTIVE', `this account is ${row.status}, not active; contact support to reactivate it`);
  }
  return { id: row.id, droplet_limit: row.droplet_limit };
}
