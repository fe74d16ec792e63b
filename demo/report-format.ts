/**
 * Number, time and duration formatting for the demo report.
 *
 * Written by hand rather than with `toLocaleString` so the report reads the
 * same on every machine (Node builds without full ICU, other locales) and a
 * test can assert on exact text.
 */

/** What a cell shows when the report holds no usable value. */
export const MISSING = '—';

/**
 * Whole numbers with thousands separators.
 *
 * @example
 * formatInteger(15012); // '15,012'
 */
export function formatInteger(n: number): string {
  if (!Number.isFinite(n)) return MISSING;
  const rounded = Math.round(n);
  const digits = Math.abs(rounded).toString();
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return rounded < 0 ? `-${grouped}` : grouped;
}

/**
 * Rates and latencies: one decimal while small (0.4 ms matters), whole
 * numbers once the decimal is noise.
 *
 * @example
 * formatMeasure(0.42); // '0.4'
 * formatMeasure(1234.5); // '1,235'
 */
export function formatMeasure(n: number): string {
  if (!Number.isFinite(n)) return MISSING;
  if (Math.abs(n) >= 10) return formatInteger(n);
  return trimZeros(n.toFixed(1));
}

const COMPACT_UNITS: ReadonlyArray<readonly [number, string]> = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/**
 * Axis labels: short enough to fit beside a chart, e.g. 0, 2.5k, 15k, 1.2M.
 *
 * @example
 * formatCompact(15000); // '15k'
 */
export function formatCompact(n: number): string {
  if (!Number.isFinite(n)) return MISSING;
  const abs = Math.abs(n);
  if (abs >= 1e15) return n.toExponential(1);
  for (const [size, unit] of COMPACT_UNITS) {
    if (abs >= size) return `${trimZeros((n / size).toFixed(2))}${unit}`;
  }
  return trimZeros(n.toFixed(2));
}

function trimZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/**
 * Durations and offsets in seconds, e.g. 45s, 2m, 1m30s, 1h05m.
 *
 * @example
 * formatSeconds(90); // '1m30s'
 */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return MISSING;
  const sign = seconds < 0 ? '-' : '';
  const abs = Math.abs(seconds);
  if (abs < 10 && abs % 1 !== 0) return `${sign}${trimZeros(abs.toFixed(1))}s`;
  const whole = Math.round(abs);
  if (whole < 60) return `${sign}${whole}s`;
  if (whole < 3600) {
    const m = Math.floor(whole / 60);
    const s = whole % 60;
    return `${sign}${m}m${s === 0 ? '' : `${pad2(s)}s`}`;
  }
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  return `${sign}${h}h${m === 0 ? '' : `${pad2(m)}m`}`;
}

function pad2(n: number): string {
  return n.toString().padStart(2, '0');
}

/** Milliseconds since the epoch, or `undefined` for a missing or malformed timestamp. */
export function parseTime(iso: string | undefined): number | undefined {
  if (typeof iso !== 'string') return undefined;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Wall-clock time in UTC, so a report reads the same wherever it is opened.
 *
 * @example
 * formatClock(Date.parse('2016-06-01T12:01:05Z')); // '12:01:05Z'
 */
export function formatClock(ms: number | undefined): string {
  if (ms === undefined) return MISSING;
  return `${new Date(ms).toISOString().slice(11, 19)}Z`;
}

/** Full UTC date and time, for headers and hover titles. */
export function formatDateTime(ms: number | undefined): string {
  if (ms === undefined) return MISSING;
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/**
 * Bytes as MB of 2^20 bytes (what `ps` and `top` call MB), one decimal.
 *
 * @example
 * formatMegabytes(52_428_800); // '50.0'
 */
export function formatMegabytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return MISSING;
  const mb = bytes / (1024 * 1024);
  return mb >= 1000 ? formatInteger(mb) : mb.toFixed(1);
}
