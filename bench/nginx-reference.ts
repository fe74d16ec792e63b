/**
 * nginx as a reference row for `bench:proxy`: the Debian package's binary,
 * started from a config generated into a temp directory (every path it
 * writes is under that directory), as a plain reverse proxy to the same
 * upstream, with keep-alive to the upstream as the Node candidates have.
 * One worker process, as each Node candidate is one process.
 *
 * @example
 *   const nginx = await startNginx({ upstream: 'http://127.0.0.1:8080', dir: tmp });
 *   // … load nginx.url …
 *   nginx.child.kill('SIGTERM');
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import path from 'node:path';

const CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];

/** The nginx binary, or undefined when none is installed. */
export function findNginx(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

export function nginxVersion(bin: string): string {
  // nginx -v prints to stderr and exits 0.
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().replace(/^nginx version: /, '');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function config(dir: string, port: number, upstream: URL, workerConnections: number): string {
  const p = (name: string) => path.join(dir, name);
  return `daemon off;
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections ${workerConnections}; }
http {
  access_log off;
  client_body_temp_path ${p('client_body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  upstream backend {
    server ${upstream.hostname}:${upstream.port};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Starts nginx in the foreground (its master process is the child) and resolves once it accepts connections. */
export async function startNginx(options: { bin: string; upstream: string; dir: string; workerConnections?: number }): Promise<{ child: ChildProcess; url: string }> {
  const dir = path.join(options.dir, 'nginx');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, config(dir, port, new URL(options.upstream), options.workerConnections ?? 1024));
  // -p: the prefix for relative paths; -e: the start-up error log, before the config's is read (not /var/log).
  const child = spawn(options.bin, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-500)}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) return { child, url: `http://127.0.0.1:${port}` };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('nginx did not accept connections within 10 s');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
