#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npm install` needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
