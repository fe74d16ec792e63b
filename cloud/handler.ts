import type { Knex } from 'knex';
import type { HarpoonClient } from '../harpoon/client.ts';
import { readJsonBody } from '../lib/http/json-body.ts';
import type { Handler, RequestContext } from '../lib/http/router.ts';
import type { Logger } from '../lib/logger.ts';
import { authenticate, type Customer } from './auth.ts';
import { toCloudError } from './errors.ts';
import type { CloudMetrics } from './metrics.ts';
import type { EventPaths } from './queue.ts';
import type { OutboxRelay } from './relay.ts';

/** How Cloud reaches Harpoon (event-writes): absent pieces mean Cloud was started without the harpoon option. */
export interface CloudEvents extends EventPaths {
  /** A client that presents a customer's own API token: Harpoon then scopes action reads to that customer, as Cloud does. */
  asCustomer?: (token: string) => HarpoonClient;
  relay?: OutboxRelay;
  /** How long a write waits for the relay before answering with what it knows. */
  relayWaitMs: number;
  clock: () => Date;
}

/** What every Cloud route needs, built once by createCloud. */
export interface CloudDeps {
  db: Knex;
  logger: Logger;
  metrics: CloudMetrics;
  bodyLimit: number;
  events: CloudEvents;
}

export type CustomerHandler = (ctx: RequestContext, customer: Customer) => Promise<void>;

/**
 * Wraps a route: the caller is authenticated before anything else is read
 * (the body included), and whatever the route throws leaves as a
 * CLOUD_ERR_ code that the shared HTTP shell turns into `{ code, message }`.
 */
export function customerRoute(deps: CloudDeps, handler: CustomerHandler): Handler {
  return async (ctx) => {
    try {
      const customer = await authenticate(deps.db, ctx.req);
      await handler(ctx, customer);
    } catch (err) {
      throw toCloudError(err);
    }
  };
}

/** The request's JSON body under Cloud's limit; the shell's errors are renamed by customerRoute. */
export function readBody(deps: CloudDeps, ctx: RequestContext): Promise<unknown> {
  return readJsonBody(ctx.req, { limit: deps.bodyLimit });
}
