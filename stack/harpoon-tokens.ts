import type { ServiceTokenSpec } from '../harpoon/auth.ts';

/**
 * Each service's Harpoon token with only what that service does (harpoon/auth.ts): Cloud creates events
 * and reads actions; a router takes the stream and marks events running/done; Scheduler V2 takes the
 * stream and places. Nobody else changes status or server.
 *
 * @example
 *   createHarpoonReplicas({ db, tokens: scopedHarpoonTokens({ cloud, router, scheduler }) });
 */
export function scopedHarpoonTokens(tokens: { cloud: string; router: string; scheduler: string }): Record<string, ServiceTokenSpec> {
  return {
    cloud: { token: tokens.cloud, scopes: ['create', 'read'] },
    router: { token: tokens.router, scopes: ['stream', 'execute', 'read'] },
    scheduler: { token: tokens.scheduler, scopes: ['stream', 'place', 'read'] },
  };
}
