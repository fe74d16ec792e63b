import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks out wherever they appear in a log object. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'url',
  '*.url',
  'mysqlUrl',
  '*.mysqlUrl',
];

/**
 * The root logger: JSON to stdout (or to `destination`), level from
 * `LOG_LEVEL` unless given, secrets redacted. Components take a child:
 * `createLogger().child({ component: 'cloud' })`.
 */
export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const opts = { level, name: options.name ?? 'strangler', redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}

/** A logger that writes nothing: the default for library use in tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
