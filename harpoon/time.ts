/**
 * Times in MySQL's DATETIME(3) text (the pools use UTC date strings) and
 * in the API's ISO form. Kept as text both ways so the host's zone never
 * enters.
 */

/** `Date.now()` → `2026-12-01 12:00:00.123`. */
export function sqlTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/** `2026-12-01 12:00:00.123` → `2026-12-01T12:00:00.123Z`; null stays null. */
export function isoFromSql(value: string | null): string | null {
  if (value === null) return null;
  // What every row holds (DATETIME(3) as the pools read it): no split, no padding.
  if (value.length === 23 && value.charCodeAt(10) === 32 && value.charCodeAt(19) === 46) return `${value.slice(0, 10)}T${value.slice(11)}Z`;
  const [date, time = '00:00:00'] = value.split(' ');
  const withMs = time.includes('.') ? time.padEnd(12, '0').slice(0, 12) : `${time}.000`;
  return `${date}T${withMs}Z`;
}
