import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { randomSecret, readOrCreateSecretFile, readSecretFile, secretsDir, secretsError, writeSecretFile } from '../secrets/secrets-file.ts';

/**
 * The keys hypervisor tokens are signed with, in a file of their own
 * (mode 0600): only the processes that sign tokens (the fleet, standing in
 * for provisioning) and those that check them (Event Routers) are given
 * its path. The first key not retired signs; every key not retired is
 * accepted, so a rotation adds a key, lets tokens move over, then retires
 * the old one. `revoked` holds, per hypervisor, an instant before which its
 * tokens are refused (a stolen token is revoked by re-issuing that host's).
 */
export interface HypervisorKey {
  /** Key id, in clear in every token it signed. */
  kid: string;
  key: string;
  created_at: string;
  /** Set when retired: its tokens are refused from then on. */
  retired_at?: string;
}

export interface HypervisorKeyRing {
  version: 1;
  keys: HypervisorKey[];
  /** server id → ISO instant: tokens of that hypervisor issued before it are refused. */
  revoked: Record<string, string>;
}

/** STRANGLER_HV_KEYS_FILE, else `hypervisor-keys.json` in the secrets folder. */
export function hypervisorKeysPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.STRANGLER_HV_KEYS_FILE || join(secretsDir(env), 'hypervisor-keys.json');
}

export function newHypervisorKey(now = new Date()): HypervisorKey {
  return { kid: randomBytes(4).toString('hex'), key: randomSecret(), created_at: now.toISOString() };
}

/** A ring of one fresh key, for a run that keeps nothing (tests, throwaway stacks). */
export function freshKeyRing(): HypervisorKeyRing {
  return { version: 1, keys: [newHypervisorKey()], revoked: {} };
}

export function parseKeyRing(raw: unknown, where: string): HypervisorKeyRing {
  const o = raw as Partial<HypervisorKeyRing>;
  if (typeof o !== 'object' || o === null || o.version !== 1 || !Array.isArray(o.keys) || o.keys.length === 0) {
    throw secretsError(`${where} is not a hypervisor key ring ({"version":1,"keys":[{kid,key,created_at}],"revoked":{}})`);
  }
  for (const k of o.keys) {
    if (typeof k?.kid !== 'string' || !/^[0-9a-f]{8}$/.test(k.kid) || typeof k.key !== 'string' || k.key.length < 16) {
      throw secretsError(`${where}: every key needs a kid of 8 hex digits and a key of at least 16 characters`);
    }
  }
  return { version: 1, keys: o.keys, revoked: o.revoked && typeof o.revoked === 'object' ? o.revoked : {} };
}

/**
 * The ring at `path`, made with one fresh key on first use.
 *
 * @example
 *   const ring = loadHypervisorKeys(hypervisorKeysPath(process.env));
 */
export function loadHypervisorKeys(path: string): HypervisorKeyRing {
  return readOrCreateSecretFile(path, freshKeyRing, parseKeyRing).value;
}

/** Adds a new signing key in front; the old ones stay accepted until retired. Returns the new kid. */
export function rotateHypervisorKey(path: string, now = new Date()): { ring: HypervisorKeyRing; kid: string } {
  const ring = loadHypervisorKeys(path);
  const key = newHypervisorKey(now);
  const next = { ...ring, keys: [key, ...ring.keys] };
  writeSecretFile(path, next);
  return { ring: next, kid: key.kid };
}

/** Refuses every token signed by `kid` from now on. The signing key cannot be retired (rotate first). */
export function retireHypervisorKey(path: string, kid: string, now = new Date()): HypervisorKeyRing {
  const ring = loadHypervisorKeys(path);
  const active = ring.keys.filter((k) => !k.retired_at);
  if (!ring.keys.some((k) => k.kid === kid)) throw secretsError(`no key ${JSON.stringify(kid)} in ${path}; its keys are ${ring.keys.map((k) => k.kid).join(', ')}`);
  if (active[0]?.kid === kid) throw secretsError(`key ${kid} is the signing key; rotate first (strangler secrets rotate-hv-key), then retire it`);
  const next = { ...ring, keys: ring.keys.map((k) => (k.kid === kid && !k.retired_at ? { ...k, retired_at: now.toISOString() } : k)) };
  writeSecretFile(path, next);
  return next;
}

/** Refuses every token of `serverId` issued before `now` (the host gets a new one from the fleet's next mint). */
export function revokeHypervisor(path: string, serverId: number, now = new Date()): HypervisorKeyRing {
  const ring = loadHypervisorKeys(path);
  const next = { ...ring, revoked: { ...ring.revoked, [String(serverId)]: now.toISOString() } };
  writeSecretFile(path, next);
  return next;
}

export interface KeyRingSource {
  /** The ring as last read. */
  current(): HypervisorKeyRing;
  close(): void;
}

/**
 * A ring that follows its file: re-read when the file changes (checked every
 * `intervalMs`), so a rotation, a retirement or a revocation reaches running
 * routers within seconds, without a restart. A ring given as a value is used as is.
 *
 * @example
 *   const keys = keyRingSource({ file: '/home/me/.config/strangler/hypervisor-keys.json' });
 *   verifyHypervisorToken(keys.current(), token, id, region);
 */
export function keyRingSource(from: HypervisorKeyRing | { file: string }, intervalMs = 1000): KeyRingSource {
  if (!('file' in from)) return { current: () => from, close: () => {} };
  const path = from.file;
  let ring = readSecretFile(path, parseKeyRing);
  let mtime = statSync(path).mtimeMs;
  const timer = setInterval(() => {
    try {
      const m = statSync(path).mtimeMs;
      if (m === mtime) return;
      ring = readSecretFile(path, parseKeyRing);
      mtime = m;
    } catch {
      // Keep the last good ring: a half-written or missing file must not lock every hypervisor out.
    }
  }, intervalMs);
  timer.unref();
  return { current: () => ring, close: () => clearInterval(timer) };
}
