import { hypervisorKeysPath, loadHypervisorKeys, retireHypervisorKey, revokeHypervisor, rotateHypervisorKey } from '../../lib/auth/hypervisor-keys.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { SERVICE_USERS, type ServiceUser } from '../../lib/db/service-users.ts';
import { loadStackSecrets, rotateDbPassword, stackSecretsPath } from '../../lib/secrets/stack-secrets.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, UsageError, intOption, parseCommandArgs, writeJson, type Command } from '../command.ts';
import { provisionServer } from '../../lib/db/provision.ts';

const HELP = `Usage: strangler secrets <verb> [options]

  where                  Where the secrets are kept (made on first use, mode 0600), and the
                         hypervisor key ids; never prints a secret.
  rotate-hv-key          Add a new hypervisor token key; it signs from now on, the old keys
                         are still accepted (routers re-read the file within a second).
  retire-hv-key KID      Refuse every token signed by KID from now on (rotate first).
  revoke-host ID         Refuse every token of hypervisor ID issued before now.
  rotate-db-password USER
                         A new random MySQL password for one service user: written to the
                         secrets file, then ALTER USER on the server (MYSQL_URL, else
                         127.0.0.1:3306 as root). Restart that service afterwards.

Options:
  --json       Print the result as JSON
  -h, --help   This text

Files: STRANGLER_SECRETS_FILE (default <dir>/stack-secrets.json) and STRANGLER_HV_KEYS_FILE
(default <dir>/hypervisor-keys.json), <dir> = STRANGLER_SECRETS_DIR, else ~/.config/strangler.
See runbooks/security.md.

Example:
  strangler secrets rotate-hv-key --json
`;

export const command: Command = {
  name: 'secrets',
  summary: 'where | rotate-hv-key | retire-hv-key | revoke-host | rotate-db-password: the stack secrets',
  help: HELP,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {});
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    const [verb, arg] = positionals;
    const keysPath = hypervisorKeysPath(io.env);
    const out = (json: Record<string, unknown>, text: string) => {
      if (values.json) writeJson(io, json);
      else io.stdout.write(`${text}\n`);
      return EXIT.ok;
    };
    switch (verb) {
      case 'where': {
        const stack = loadStackSecrets(io.env);
        const ring = loadHypervisorKeys(keysPath);
        const keys = ring.keys.map((k) => ({ kid: k.kid, created_at: k.created_at, retired_at: k.retired_at ?? null }));
        return out(
          { stack_secrets: stack.path, created: stack.created, users: Object.keys(stack.secrets.db), hypervisor_keys: keysPath, keys, revoked_hosts: ring.revoked },
          `stack secrets:   ${stack.path}${stack.created ? ' (made now)' : ''}\nhypervisor keys: ${keysPath}\n${keys.map((k, i) => `  ${k.kid}${i === 0 ? ' (signs)' : ''}${k.retired_at ? ` retired ${k.retired_at}` : ''}`).join('\n')}`,
        );
      }
      case 'rotate-hv-key': {
        loadHypervisorKeys(keysPath);
        const { kid, ring } = rotateHypervisorKey(keysPath);
        return out({ kid, accepted: ring.keys.filter((k) => !k.retired_at).map((k) => k.kid), file: keysPath }, `new signing key ${kid}; still accepted: ${ring.keys.filter((k) => !k.retired_at).map((k) => k.kid).join(', ')}`);
      }
      case 'retire-hv-key': {
        if (!arg) throw new UsageError('retire-hv-key needs the key id (strangler secrets where lists them)');
        const ring = retireHypervisorKey(keysPath, arg);
        return out({ retired: arg, accepted: ring.keys.filter((k) => !k.retired_at).map((k) => k.kid) }, `key ${arg} retired: its tokens are refused from now on`);
      }
      case 'revoke-host': {
        if (!arg) throw new UsageError('revoke-host needs a hypervisor id');
        const id = intOption('ID', arg, 0, 1);
        const ring = revokeHypervisor(keysPath, id);
        return out({ revoked: id, before: ring.revoked[String(id)] }, `tokens of hypervisor ${id} issued before ${ring.revoked[String(id)]} are refused`);
      }
      case 'rotate-db-password': {
        if (!arg || !SERVICE_USERS.includes(arg as ServiceUser)) throw new UsageError(`rotate-db-password needs one of ${SERVICE_USERS.join(', ')}`);
        const user = arg as ServiceUser;
        const server = await provisionServer({ env: io.env, logger: cliLogger(io.env), needConnections: 1, allowStart: false });
        try {
          const { secrets, path } = rotateDbPassword(io.env, user);
          const admin = createKnex(server.admin, { poolMax: 1 });
          try {
            await admin.raw(`ALTER USER ?@'%' IDENTIFIED BY ?`, [user, secrets.db[user]]);
          } finally {
            await admin.destroy();
          }
          return out({ user, file: path, altered: true }, `new password for ${user} written to ${path} and set on the server; restart ${user}'s service`);
        } finally {
          await server.release();
        }
      }
      default:
        throw new UsageError(`expected where, rotate-hv-key, retire-hv-key, revoke-host or rotate-db-password, got ${JSON.stringify(verb ?? '')}; files: ${stackSecretsPath(io.env)}, ${keysPath}`);
    }
  },
};
