import { pino } from 'pino';
import { REDACT_PATHS, type Logger } from '../lib/logger.ts';

/** CLI logs go to stderr (stdout is for results) at LOG_LEVEL, default warn. */
export function cliLogger(env: NodeJS.ProcessEnv): Logger {
  return pino(
    { level: env.LOG_LEVEL ?? 'warn', name: 'strangler', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    pino.destination(2),
  );
}
