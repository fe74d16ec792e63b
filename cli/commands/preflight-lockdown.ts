import { describeOffenders, lockdownPreflight, type LockdownPreflight } from '../../harpoon/lockdown-preflight.ts';
import { EXIT, databaseOption, intOption, parseCommandArgs, writeJson, type CommandIO } from '../command.ts';
import { cliLogger } from '../cli-logger.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { resolveDatabaseTarget } from '../database-target.ts';

export const PREFLIGHT_LOCKDOWN_HELP = `Usage: strangler cutover preflight-lockdown [--database NAME] [--window-ms N] [--json]

Watches the server for a few seconds and lists which database users touched the
event-data tables (events, event_log, event_outbox) meanwhile: the check the lockdown
step runs before it revokes anything. It samples information_schema.PROCESSLIST (each
connection's user and current statement) every 20 ms, and, where the server has
userstat on, adds the rows read and changed per table in the window. A statement of a
few milliseconds run rarely can fall between two samples: a poller is caught, a
one-off may not be (runbooks/security.md: preflight). Reads only.

Exit 0 when no one but Harpoon (and the hand-offs: Cloud's own outbox; administrators)
was seen; exit 3 otherwise, naming the users.

Options:
  --database NAME   The database (default: the MYSQL_URL path, else "strangler")
  --window-ms N     How long to watch (default 5000, 200 to 600000)
  --json            Print the preflight as JSON
  -h, --help        This text

Uses MYSQL_URL (an account with the PROCESS privilege, such as root), else the server on
127.0.0.1:3306 (root, no password).
`;

function text(p: LockdownPreflight): string {
  const touched = p.touched.map((t) => `  ${t.user.padEnd(18)} ${t.table.padEnd(14)} ${t.operations.join('/').padEnd(22)} ${String(t.samples).padStart(5)} ${t.allowed ? 'allowed' : 'CUT OFF BY LOCKDOWN'}`);
  const activity = p.table_activity
    ? `rows in the window (userstat): ${Object.entries(p.table_activity).map(([t, a]) => `${t} read ${a.rows_read}, changed ${a.rows_changed}`).join('; ')}; users active: ${p.active_users?.join(', ') || 'none'}`
    : 'userstat is off on this server: no per-table row counts';
  return [
    `who touched event data on ${p.database} in ${p.window_ms} ms (${p.samples} process-list samples)`,
    touched.length ? `  ${'USER'.padEnd(18)} ${'TABLE'.padEnd(14)} ${'STATEMENTS'.padEnd(22)} SEEN` : '  no statement on event data seen',
    ...touched,
    `connected: ${p.connected.map((c) => `${c.user} (${c.connections})`).join(', ') || 'no one'}`,
    activity,
    p.ok ? 'OK: no one lockdown would cut off was seen at event data' : `REFUSE LOCKDOWN: still touching event data: ${describeOffenders(p).join('; ')}`,
  ].join('\n');
}

/** `strangler cutover preflight-lockdown`: talks to MySQL as the server's admin account, not to the admin API. */
export async function runPreflightLockdown(argv: string[], io: CommandIO): Promise<number> {
  const { values } = parseCommandArgs(argv, { database: { type: 'string' }, 'window-ms': { type: 'string' } });
  if (values.help) {
    io.stdout.write(PREFLIGHT_LOCKDOWN_HELP);
    return EXIT.ok;
  }
  const windowMs = intOption('window-ms', values['window-ms'], 5000, 200, 600_000);
  const target = await resolveDatabaseTarget({ env: io.env, database: databaseOption(values.database), needConnections: 10, logger: cliLogger(io.env) });
  const admin = createKnex({ ...target.server, database: target.database }, { poolMin: 0, poolMax: 1 });
  try {
    const p = await lockdownPreflight(admin, target.database, { windowMs });
    if (values.json) writeJson(io, p);
    else io.stdout.write(`${text(p)}\n`);
    return p.ok ? EXIT.ok : EXIT.precondition;
  } finally {
    await admin.destroy();
    await target.release();
  }
}
