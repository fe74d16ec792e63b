/**
 * The features the cutover plan moves, in the order the brief gives, and
 * their names as constants for the services that follow one of them.
 * Neutral: the proxy's plan, the cutover state and every service read the
 * same names from here.
 *
 * @example
 *   import { EVENT_DELIVERY, FEATURES } from '../domain/features.ts';
 *   FEATURES.includes(EVENT_DELIVERY); // true
 */
export const FEATURES = ['event-delivery', 'scheduling', 'event-writes', 'event-reads', 'lockdown'] as const;
export type FeatureName = (typeof FEATURES)[number];

/** Moves event delivery from the god query to the Event Router. */
export const EVENT_DELIVERY = 'event-delivery' satisfies FeatureName;
/** Moves placement from Scheduler V1 to Scheduler V2. */
export const SCHEDULING = 'scheduling' satisfies FeatureName;
/** Moves Cloud's event writes (and, at full, its event reads) to Harpoon. */
export const EVENT_WRITES = 'event-writes' satisfies FeatureName;
/** Moves the router's and schedulers' event reads to Harpoon's push. */
export const EVENT_READS = 'event-reads' satisfies FeatureName;
/** Leaves Harpoon's MySQL user the only one with grants on event data. */
export const LOCKDOWN = 'lockdown' satisfies FeatureName;
