import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject, describe, expect, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { SERVICE_USERS } from '../../lib/db/service-users.ts';
import { BIN } from '../helpers/cli.ts';
import { waitFor } from '../helpers/seeded.ts';

/**
 * Issue 12, points 1–3, end to end: `strangler up` on a fresh database with no secret configured.
 * Seen succeed before the fix: every password was an HMAC of the public DEFAULT_DB_SECRET, and every
 * child (routers, Harpoon replicas, proxy and fleet workers) held root's MYSQL_URL and
 * STRANGLER_ADMIN_TOKEN in /proc/<pid>/environ.
 */
const ADMIN_TOKEN = 'operator-admin-token-0123456789';

/** Every descendant of `root`, from /proc (Linux). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, p] of parent) if (p === pid) (out.push(child), walk(child));
  };
  walk(root);
  return out;
}

function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

describe('strangler up with no secret configured (issue 12 points 1, 2, 3)', () => {
  it('makes random passwords in a 0600 file, and no child holds root\'s URL or the admin token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strangler-up-secrets-'));
    const rootUrl = formatMysqlUrl(inject('dbAdmin'));
    const env = { ...process.env, MYSQL_URL: rootUrl, STRANGLER_ADMIN_TOKEN: ADMIN_TOKEN, STRANGLER_SECRETS_DIR: dir, LOG_LEVEL: 'error' };
    const child = spawn(process.execPath, [BIN, 'up', '--hypervisors', '4', '--regions', '1', '--port', '0', '--monitor-port', '0', '--cloud-port', '0', '--targets-dir', join(dir, 'targets'), '--seconds', '600'], { env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await waitFor(async () => out.includes('Legacy stack is up'), 360_000, 500);
      expect(out).toContain(join(dir, 'stack-secrets.json'));
      const file = join(dir, 'stack-secrets.json');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const { db } = JSON.parse(readFileSync(file, 'utf8')) as { db: Record<string, string> };
      // Random, one per user, none the old derivation from the constant that was in the repository.
      expect(Object.keys(db).sort()).toEqual([...SERVICE_USERS].sort());
      expect(new Set(Object.values(db)).size).toBe(SERVICE_USERS.length);
      for (const [user, password] of Object.entries(db)) {
        expect(password).not.toBe(createHmac('sha256', 'strangler-local-development-only').update(`mysql-user:${user}`).digest('base64url').slice(0, 32));
      }
      const pids = descendants(child.pid!);
      const services = pids.filter((pid) => environ(pid).some((e) => /^(ROUTER_MYSQL_URL|HARPOON_MYSQL_URL|NODE_UNIQUE_ID)=/.test(e)));
      // Routers, Harpoon replicas, proxy workers at least.
      expect(services.length).toBeGreaterThanOrEqual(3);
      for (const pid of pids) {
        const vars = environ(pid);
        const cmd = (() => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return '?'; } })();
        expect(vars.filter((e) => e.startsWith('MYSQL_URL=')), `pid ${pid}: ${cmd}`).toEqual([]);
        expect(vars.some((e) => e.includes(ADMIN_TOKEN)), `pid ${pid} (${cmd}) holds the admin token`).toBe(false);
        expect(vars.some((e) => e.includes(rootUrl)), `pid ${pid} (${cmd}) holds root's URL`).toBe(false);
        // A router holds its own password only: never another service's.
        const mine = vars.find((e) => e.startsWith('ROUTER_MYSQL_URL='));
        if (mine) for (const [user, password] of Object.entries(db)) if (user !== 'event_router') expect(vars.join('\n')).not.toContain(password);
      }
    } finally {
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 420_000);
});
