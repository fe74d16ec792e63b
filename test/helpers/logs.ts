import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../lib/logger.ts';

/** One pino line as written: `level` is pino's number (30 info, 40 warn, 50 error). */
export type LogRecord = { level: number; msg: string; err?: string } & Record<string, unknown>;

/**
 * A real pino logger whose lines are kept in memory: `warnings()` for a
 * service that must run without complaint, `records()` to assert a line an
 * operator relies on (its code and fields).
 */
export function recordingLogger(level: 'info' | 'warn' = 'warn'): { logger: Logger; warnings: () => Array<{ msg: string; err?: string }>; records: () => LogRecord[] } {
  const lines: LogRecord[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return {
    logger: createLogger({ level, destination }),
    warnings: () => lines.filter((l) => l.level >= 40).map((l) => ({ msg: l.msg, ...(l.err ? { err: l.err } : {}) })),
    records: () => lines,
  };
}
