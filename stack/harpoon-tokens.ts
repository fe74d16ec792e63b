import type { ServiceTokenSpec } from '../harpoon/auth.ts';
import { randomSecret } from '../lib/secrets/secrets-file.ts';

/** Each Harpoon client's token: Cloud's, Scheduler V2's, and one per router, by region. */
export interface HarpoonServiceTokens {
  cloud: string;
  scheduler: string;
  /** Region slug → that region's router token. */
  routers: Readonly<Record<string, string>>;
}

/**
 * Fresh random tokens (lib/secrets/secrets-file.ts's randomSecret) for one run of a stack: one for
 * Cloud, one for Scheduler V2 and one per region's router, so a router holds a token that reaches
 * its own region's events only.
 *
 * @example
 *   const tokens = generateHarpoonTokens(['nyc1', 'sfo1']);   // tokens.routers.nyc1, tokens.routers.sfo1
 */
export function generateHarpoonTokens(regions: readonly string[]): HarpoonServiceTokens {
  return { cloud: randomSecret(), scheduler: randomSecret(), routers: Object.fromEntries(regions.map((r) => [r, randomSecret()])) };
}

/**
 * Each service's Harpoon token with only what that service does (harpoon/auth.ts): Cloud creates events
 * and reads actions; a router (`router-<region>`) takes its region's stream and marks its region's events
 * running/done, and nothing of another region; Scheduler V2 takes the stream and places. Nobody else
 * changes status or server.
 *
 * @example
 *   createHarpoonReplicas({ db, tokens: scopedHarpoonTokens(generateHarpoonTokens(['nyc1'])) });
 */
export function scopedHarpoonTokens(tokens: HarpoonServiceTokens): Record<string, ServiceTokenSpec> {
  return {
    cloud: { token: tokens.cloud, scopes: ['create', 'read'] },
    scheduler: { token: tokens.scheduler, scopes: ['stream', 'place', 'read'] },
    ...Object.fromEntries(Object.entries(tokens.routers).map(([region, token]) => [`router-${region}`, { token, scopes: ['stream', 'execute', 'read'], region }])),
  };
}
