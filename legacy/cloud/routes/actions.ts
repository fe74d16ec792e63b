import { sendJson } from '../../../lib/http/respond.ts';
import type { Router } from '../../../lib/http/router.ts';
import { cloudError } from '../errors.ts';
import { customerRoute, type CloudDeps } from '../handler.ts';
import { readEvent } from '../queue.ts';
import { serializeAction } from '../serialize.ts';
import { parseId } from '../validate.ts';

/**
 * GET /v2/actions/:id: an events row seen as a DO action, so a client can
 * poll the create it was handed in `links.actions` until it completes.
 */
export function addActionRoutes(router: Router, deps: CloudDeps): void {
  router.add(
    'GET',
    '/v2/actions/:id',
    customerRoute(deps, async (ctx, customer) => {
      const id = parseId(ctx.params.id, 'action');
      const event = await readEvent(deps.db, customer.id, id);
      if (!event) throw cloudError('CLOUD_ERR_NOT_FOUND', `action ${id} not found`);
      sendJson(ctx.res, 200, { action: serializeAction(event) });
    }),
  );
}
