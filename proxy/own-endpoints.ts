import type { ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { sendError, sendJson } from '../lib/http/respond.ts';
import type { Logger } from '../lib/logger.ts';
import type { UpstreamSet } from './upstreams.ts';

/** The paths the proxy answers itself, on its data port, before any route. */
export const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Answers /healthz, /readyz or /metrics. The proxy is ready whatever its
 * upstreams do (panic routing still tries them); /readyz names the
 * instances failing their checks, for operators.
 *
 * @example
 *   if (OWN_PATHS.has(pathname)) answerOwnEndpoint(pathname, res, { ready: listening && !closing, upstreams, healthPath: '/healthz', registry, headers, log });
 */
export function answerOwnEndpoint(
  pathname: string,
  res: ServerResponse,
  proxy: { ready: boolean; upstreams: UpstreamSet; healthPath: string; registry: Registry; headers: Record<string, string>; log: Logger },
): void {
  const { headers } = proxy;
  if (pathname === '/healthz') sendJson(res, 200, { status: 'ok', service: 'proxy' }, headers);
  else if (pathname === '/readyz') {
    const unready = proxy.upstreams
      .all()
      .flatMap((u) => (u.healthy ? [] : u.pools().map((p) => ({ feature: p.feature, target: p.target, instance: u.url, health_path: u.healthPath ?? proxy.healthPath }))));
    sendJson(res, proxy.ready ? 200 : 503, { status: proxy.ready ? 'ready' : 'not ready', service: 'proxy', unready_upstreams: unready }, headers);
  } else {
    proxy.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': proxy.registry.contentType, ...headers });
        res.end(body);
      },
      (err: Error) => {
        proxy.log.error({ err }, 'metrics collection failed');
        sendError(res, 500, 'PROXY_ERR_INTERNAL', 'metrics collection failed; see the proxy log', headers);
      },
    );
  }
}
