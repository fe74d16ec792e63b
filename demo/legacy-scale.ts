/**
 * The largest fleet whose whole migration held with the 2016 legacy (one thread per connection, the
 * 2016 god query, one connection per agent) on the 2-core reference machine: the sweep of 2026-12-07
 * (docs/legacy-2016.md). Above it the legacy stops delivering and the migration's later stages run in
 * its wake; the run goes on, but it says so.
 */
export const LEGACY_2016_LARGEST_MIGRATED_FLEET = 5_000;

/**
 * Why a run of this size may not finish, or undefined when the measured limit says it will.
 *
 * @example
 *   legacyScaleNote(15_000, 'one-thread-per-connection', '2016', undefined) // "15,000 hypervisors …"
 */
export function legacyScaleNote(hypervisors: number, threadHandling: string, godQuery: string, multiplex: number | undefined): string | undefined {
  if (hypervisors <= LEGACY_2016_LARGEST_MIGRATED_FLEET) return undefined;
  if (threadHandling !== 'one-thread-per-connection' || godQuery !== '2016' || multiplex !== undefined) return undefined;
  return (
    `${hypervisors.toLocaleString('en-US')} hypervisors on the 2016 legacy: on a 2-core machine it stopped delivering at ` +
    `${LEGACY_2016_LARGEST_MIGRATED_FLEET.toLocaleString('en-US')} and its migration did not finish above that (docs/legacy-2016.md, the sweep), ` +
    `and on a quiet 24 GB machine 15,000 of them ran its server out of memory (the kernel killed it: DEMO_ERR_DATABASE_DIED); ` +
    `--god-query optimized --thread-handling pool-of-threads reaches 15,000`
  );
}
