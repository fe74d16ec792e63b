/**
 * The benches' command-line arguments (`--name value`). A bad number ends
 * the run with exit 2 and a message that names the flag.
 *
 * @example
 *   const seconds = numberArg('seconds', 10);
 */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} must be a positive number`);
    process.exit(2);
  }
  return v;
}

/** A text argument, or undefined when the flag is absent. */
export function textArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}
