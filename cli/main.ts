import { StranglerError } from '../lib/errors.ts';
import { EXIT, UsageError, type Command, type CommandIO } from './command.ts';
import { command as cutover } from './commands/cutover.ts';
import { command as db } from './commands/db.ts';
import { command as demo } from './commands/demo.ts';
import { command as fleet } from './commands/fleet.ts';
import { command as replay } from './commands/replay.ts';
import { command as scheduler } from './commands/scheduler.ts';
import { command as up } from './commands/up.ts';

export const COMMANDS: Command[] = [up, demo, db, fleet, scheduler, cutover, replay];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: strangler <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --help and --json. Exit codes: 0 ok, 1 failed, 2 bad usage, 3 precondition not met.',
    'Database: MYSQL_URL if set, else a server on 127.0.0.1:3306, else (up, demo) a throwaway mariadbd.',
  ].join('\n');
}

/**
 * Runs one CLI invocation and returns its exit code.
 *
 * @example
 *   process.exitCode = await main(['db', 'migrate', '--json']);
 */
export async function main(argv: string[], io?: Partial<CommandIO>): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const fullIo: CommandIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: controller.signal,
    ...io,
  };
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      fullIo.stdout.write(usage() + '\n');
      return name ? EXIT.ok : EXIT.usage;
    }
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) {
      fullIo.stderr.write(`strangler: unknown command "${name}"\n\n${usage()}\n`);
      return EXIT.usage;
    }
    return await cmd.run(rest, fullIo);
  } catch (err) {
    if (err instanceof UsageError) {
      fullIo.stderr.write(`strangler ${name}: ${err.message}\nRun "strangler ${name} --help" for usage.\n`);
      return EXIT.usage;
    }
    if (err instanceof StranglerError) {
      fullIo.stderr.write(`strangler ${name}: ${err.code}: ${err.message}\n`);
      return err.code.startsWith('DB_ERR') ? EXIT.precondition : EXIT.failed;
    }
    fullIo.stderr.write(`strangler ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failed;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
