import { verifyLockdown, OPERATIONS, type LockdownVerification } from '../../harpoon/verify-lockdown.ts';
import { EVENT_DATA_TABLES } from '../../domain/event-data.ts';
import { EXIT, databaseOption, parseCommandArgs, writeJson, type CommandIO } from '../command.ts';
import { cliLogger } from '../cli-logger.ts';
import { resolveDatabaseTarget } from '../database-target.ts';

export const VERIFY_LOCKDOWN_HELP = `Usage: strangler cutover verify-lockdown [--database NAME] [--json]

Logs in as every service user (passwords from the stack secrets file) and tries to
SELECT, INSERT, UPDATE and DELETE on every event-data table (events, event_log,
event_outbox). Nothing is written: each attempt is rolled back, and the writes match
no row. Prints the matrix. Exit 0 only when no one but Harpoon may touch event data
(Cloud's INSERT/SELECT/DELETE on its own outbox is listed as a hand-off); exit 3 otherwise.

Options:
  --database NAME   The database (default: the MYSQL_URL path, else "strangler")
  --json            Print the verification as JSON
  -h, --help        This text

Uses MYSQL_URL, else the server on 127.0.0.1:3306 (root, no password). See runbooks/security.md.
`;

function text(v: LockdownVerification): string {
  const head = ['USER'.padEnd(18), ...EVENT_DATA_TABLES.map((t) => t.padEnd(14))].join(' ');
  const mark = { allowed: 'Y', denied: '-', 'login-failed': '!' } as const;
  const lines = Object.entries(v.matrix).map(([user, row]) =>
    [user.padEnd(18), ...EVENT_DATA_TABLES.map((t) => OPERATIONS.map((op) => mark[row[t]![op]]).join('').padEnd(14))].join(' '),
  );
  return [
    `event data on ${v.database} (each cell: ${OPERATIONS.join('/')}; Y allowed, - denied, ! login failed)`,
    head,
    ...lines,
    v.handoffs.length ? `hand-offs (by design): ${v.handoffs.join(', ')}` : '',
    v.ok ? 'OK: only Harpoon may touch event data' : `NOT LOCKED DOWN: ${[...v.violations, ...(v.owner_ok ? [] : ['Harpoon itself cannot read or write events/event_log'])].join(', ')}`,
    '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/** `strangler cutover verify-lockdown`: talks to MySQL, not to the admin API. */
export async function runVerifyLockdown(argv: string[], io: CommandIO): Promise<number> {
  const { values } = parseCommandArgs(argv, { database: { type: 'string' } });
  if (values.help) {
    io.stdout.write(VERIFY_LOCKDOWN_HELP);
    return EXIT.ok;
  }
  const target = await resolveDatabaseTarget({ env: io.env, database: databaseOption(values.database), needConnections: 10, logger: cliLogger(io.env) });
  try {
    const v = await verifyLockdown({ server: target.server, database: target.database, passwords: target.passwords });
    if (values.json) writeJson(io, v);
    else io.stdout.write(`${text(v)}\n`);
    return v.ok ? EXIT.ok : EXIT.precondition;
  } finally {
    await target.release();
  }
}
