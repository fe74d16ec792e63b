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

interface Route<H> {
  method: string;
  pattern: string;
  regex: RegExp;
  keys: string[];
  handler: H;
}

export interface Match<H = Handler> {
  handler: H;
  params: Record<string, string>;
  /** The route's pattern (`/v2/droplets/:id`): a bounded label for metrics. */
  pattern: string;
}

/**
 * A small method + path router. Patterns use `:name` segments; a path that
 * exists under another method yields `allowed` so the caller can answer 405.
 * The handler slot holds any value (the proxy keeps its compiled routes in it).
 *
 * @example
 *   const router = createRouter().add('GET', '/v2/droplets/:id', getDroplet);
 *   const m = router.match('GET', '/v2/droplets/7'); // m.params.id === '7'
 */
export function createRouter<H = Handler>() {
  const routes: Route<H>[] = [];
  const api = {
    add(method: string, pattern: string, handler: H) {
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
    match(method: string, path: string): Match<H> | { allowed: string[] } | undefined {
      // Plain loops and no array unless a 405 needs one: the proxy matches every request it forwards.
      let allowed: string[] | undefined;
      for (let r = 0; r < routes.length; r++) {
        const route = routes[r]!;
        const m = route.regex.exec(path);
        if (!m) continue;
        if (route.method !== method) {
          (allowed ??= []).push(route.method);
          continue;
        }
        const params: Record<string, string> = {};
        const keys = route.keys;
        for (let i = 0; i < keys.length; i++) {
          const raw = m[i + 1]!;
          let value = raw;
          // Most segments (ids, slugs) have nothing to decode.
          if (raw.includes('%')) {
            try {
              value = decodeURIComponent(raw);
            } catch (cause) {
              throw new StranglerError('HTTP_ERR_BAD_PATH', `path segment ${JSON.stringify(raw.slice(0, 100))} is not valid percent-encoding`, { status: 400, cause });
            }
          }
          // `%00`, `%0a` and friends name nothing, and would reach queries and log lines as they are.
          if (CONTROL.test(value)) {
            throw new StranglerError('HTTP_ERR_BAD_PATH', `path segment ${JSON.stringify(raw.slice(0, 100))} encodes a control character`, { status: 400 });
          }
          params[keys[i]!] = value;
        }
        return { handler: route.handler, params, pattern: route.pattern };
      }
      return allowed ? { allowed } : undefined;
    },
  };
  return api;
}

export type Router<H = Handler> = ReturnType<typeof createRouter<H>>;
