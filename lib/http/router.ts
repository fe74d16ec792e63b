import type { IncomingMessage, ServerResponse } from 'node:http';
import { StranglerError } from '../errors.ts';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  requestId: string;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  pattern: string;
  regex: RegExp;
  keys: string[];
  handler: Handler;
}

export interface Match {
  handler: Handler;
  params: Record<string, string>;
  /** The route's pattern (`/v2/droplets/:id`): a bounded label for metrics. */
  pattern: string;
}

/**
 * A small method + path router. Patterns use `:name` segments; a path that
 * exists under another method yields `allowed` so the caller can answer 405.
 *
 * @example
 *   const router = createRouter().add('GET', '/v2/droplets/:id', getDroplet);
 *   const m = router.match('GET', '/v2/droplets/7'); // m.params.id === '7'
 */
export function createRouter() {
  const routes: Route[] = [];
  const api = {
    add(method: string, pattern: string, handler: Handler) {
      const keys: string[] = [];
      const source = pattern
        .split('/')
        .map((seg) => {
          if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          keys.push(seg.slice(1));
          return '([^/]+)';
        })
        .join('/');
      routes.push({ method, pattern, regex: new RegExp(`^${source}/?$`), keys, handler });
      return api;
    },
    match(method: string, path: string): Match | { allowed: string[] } | undefined {
      const allowed: string[] = [];
      for (const route of routes) {
        const m = route.regex.exec(path);
        if (!m) continue;
        if (route.method !== method) {
          allowed.push(route.method);
          continue;
        }
        const params: Record<string, string> = {};
        for (const [i, k] of route.keys.entries()) {
          const raw = m[i + 1]!;
          let value: string;
          try {
            value = decodeURIComponent(raw);
          } catch (cause) {
            throw new StranglerError('HTTP_ERR_BAD_PATH', `path segment ${JSON.stringify(raw.slice(0, 100))} is not valid percent-encoding`, { status: 400, cause });
          }
          // `%00`, `%0a` and friends name nothing, and would reach queries and log lines as they are.
          if (CONTROL.test(value)) {
            throw new StranglerError('HTTP_ERR_BAD_PATH', `path segment ${JSON.stringify(raw.slice(0, 100))} encodes a control character`, { status: 400 });
          }
          params[k] = value;
        }
        return { handler: route.handler, params, pattern: route.pattern };
      }
      return allowed.length ? { allowed } : undefined;
    },
  };
  return api;
}

export type Router = ReturnType<typeof createRouter>;
