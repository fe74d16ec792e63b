import { sendJson } from '../../lib/http/respond.ts';
import type { Router } from '../../lib/http/router.ts';
import { getAction, listActions } from '../action-reads.ts';
import { customerRoute, type CloudDeps } from '../handler.ts';
import { ACTION_MAX_PAGE, parseId, parsePagination } from '../validate.ts';

/**
 * GET /v2/actions/:id (an event seen as a DO action, so a client can poll
 * the create it was handed in `links.actions` until it completes), and the
 * lists GET /v2/actions and GET /v2/droplets/:id/actions, newest first.
 * These three are what `event-reads` moves to Harpoon behind the proxy
 * (proxy/public-routes.ts); Harpoon answers them with the same JSON.
 */
export function addActionRoutes(router: Router, deps: CloudDeps): void {
  router.add(
    'GET',
    '/v2/actions/:id',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'action');
      sendJson(ctx.res, 200, { action: await getAction(deps, ctx.req, customer, id) });
    }),
  );
  router.add(
    'GET',
    '/v2/actions',
    customerRoute(deps, async (ctx, customer) => {
      const page = parsePagination(ctx.query, ACTION_MAX_PAGE);
      sendJson(ctx.res, 200, await listActions(deps, ctx.req, customer, '/v2/actions', page));
    }),
  );
  router.add(
    'GET',
    '/v2/droplets/:id/actions',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'droplet');
      const page = parsePagination(ctx.query, ACTION_MAX_PAGE);
      sendJson(ctx.res, 200, await listActions(deps, ctx.req, customer, `/v2/droplets/${id}/actions`, page, id));
    }),
  );
}
