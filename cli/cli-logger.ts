import { Writable } from 'node:stream';
import { pino } from 'pino';
import { REDACT_PATHS, type Logger } from '../lib/logger.ts';

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
/** pino's own fields: the line says them in its own words, so they are not repeated as key=value. */
const OWN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'component', 'msg', 'v']);

/**
 * CLI logs go to stderr (stdout is for results) at LOG_LEVEL, default warn. A person at a terminal
 * reads a line (`warn  cutover: gate failing … · feature=scheduling`); a pipe or a file gets pino's
 * JSON, as does `LOG_FORMAT=json`. Secrets are redacted before either is written.
 *
 * @example
 *   const logger = cliLogger(process.env); // lines on a terminal, JSON in CI logs
 */
export function cliLogger(env: NodeJS.ProcessEnv, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): Logger {
  const options = { level: env.LOG_LEVEL ?? 'warn', name: 'strangler', redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (!stream.isTTY || env.LOG_FORMAT === 'json') {
    return stream === process.stderr ? pino(options, pino.destination(2)) : pino(options, stream as pino.DestinationStream);
  }
  return pino(options, humanLines(stream));
}

/** pino's JSON lines, one at a time, as `level  component: message · key=value …`. */
function humanLines(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') out.write(formatLine(line) + '\n');
      }
      done();
    },
  });
}

/** One pino JSON line for a person; a line that is not JSON is passed on as it is. */
export function formatLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = LEVELS[Number(entry.level)] ?? String(entry.level);
  const where = typeof entry.component === 'string' ? `${entry.component}: ` : '';
  const fields = Object.entries(entry)
    .filter(([k]) => !OWN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${level.padEnd(5)} ${where}${String(entry.msg ?? '')}${fields.length ? ` · ${fields.join(' ')}` : ''}`;
}
