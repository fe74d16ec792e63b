/**
 * Just enough of Perl's `printf` and number stringification to reproduce
 * Scheduler V1's log lines byte for byte. Operators grep these lines and
 * diff them against old logs, so "close enough" formatting is not enough.
 */

/** Perl `%d`: truncates toward zero (it does not round), so 1023.9 MB prints as 1023. */
export function perlInt(n: number): string {
  return String(Math.trunc(n) || 0); // `|| 0` turns -0 into 0: Perl never prints "-0"
}

/**
 * A number interpolated into a Perl double-quoted string: integers print as
 * themselves, other values as `%.15g`, so 0.1 + 0.2 prints as 0.3 (as Perl
 * would), not as JavaScript's 0.30000000000000004.
 */
export function perlNum(n: number): string {
  if (Number.isSafeInteger(n)) return String(n);
  const [mantissa = '', expText = '0'] = n.toExponential(14).split('e');
  const exp = Number(expText);
  const trim = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= 15) {
    const digits = String(Math.abs(exp)).padStart(2, '0');
    return `${trim(mantissa)}e${exp < 0 ? '-' : '+'}${digits}`;
  }
  return trim(n.toFixed(14 - exp));
}

/**
 * `printf "\tSKIP %-12s region=%d memfree=%7d diskfree_actual=%6d "`.
 * Widths are minimums, as in printf: a 13-character name or an 8-digit
 * memfree widens the line instead of being cut.
 *
 * @example
 *   formatSkipPrefix('hv-01', 1, 65536, 1500)
 *   // => "\tSKIP hv-01        region=1 memfree=  65536 diskfree_actual=  1500 "
 */
export function formatSkipPrefix(name: string, regionId: number, memfree: number, diskfreeActual: number): string {
  return (
    `\tSKIP ${name.padEnd(12)} region=${perlInt(regionId)}` +
    ` memfree=${perlInt(memfree).padStart(7)} diskfree_actual=${perlInt(diskfreeActual).padStart(6)} `
  );
}
