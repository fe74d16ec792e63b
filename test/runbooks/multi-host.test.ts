import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMAND_NAMES } from '../../cli/main.ts';
import { validateProxyConfig } from '../../proxy/config.ts';

const RUNBOOK = readFileSync(new URL('../../runbooks/multi-host.md', import.meta.url), 'utf8');

describe('runbooks/multi-host.md says what the code does', () => {
  it('its Kubernetes proxy.json is a valid proxy config', () => {
    const block = /proxy\.json: \|\n([\s\S]*?)\n {2}plan\.json:/.exec(RUNBOOK)?.[1];
    expect(block).toBeDefined();
    expect(validateProxyConfig(JSON.parse(block!)).features.catalog).toBeTruthy();
  });

  it('every strangler verb and serve service it names exists', async () => {
    const verbs = [...RUNBOOK.matchAll(/strangler(?:\.js)? (serve [a-z]+|[a-z]+)/g)].map((m) => m[1]!);
    expect(verbs.length).toBeGreaterThan(5);
    const { command: serve } = await import('../../cli/commands/serve.ts');
    for (const verb of new Set(verbs)) {
      const [name, service] = verb.split(' ');
      expect(COMMAND_NAMES, verb).toContain(name);
      if (name === 'serve' && service !== undefined) expect(serve.help, verb).toContain(`  ${service} `);
    }
  });
});
