#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npm install` needs no build step.
import { register } from 'tsx/esm/api';

// The operator's credentials reach the CLI's code through its io.env only: anything this process
// spawns with process.env (tsx's esbuild service, a library's helper) must not inherit root's URL
// or the admin token (runbooks/security.md). Services get allow-listed environments of their own.
const env = { ...process.env };
for (const name of ['MYSQL_URL', 'STRANGLER_ADMIN_TOKEN']) delete process.env[name];

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2), { env });
