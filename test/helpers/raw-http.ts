import { connect, type Socket } from 'node:net';

/** An answer read off a raw socket: what the server put on the wire, unparsed by any HTTP client. */
export interface WireAnswer {
  /** 0 when the server closed the connection without answering. */
  status: number;
  headers: Record<string, string>;
  text: string;
  /** Parsed JSON body, or undefined. */
  json: any;
  /** ms from connect until the answer was complete (or the connection closed). */
  ms: number;
  /** Resolves with ms from connect once the server has closed the connection (never for a kept-alive one). */
  closed: Promise<number>;
  /** The client's socket, destroyed by `done()`. */
  socket: Socket;
  done(): void;
}

export interface WireOptions {
  /** Written after the head, in order; a function is awaited between writes (to pace a slow client). */
  body?: Array<string | Buffer | (() => Promise<void>)>;
  /** Half-close after writing (the client hangs up its side). */
  end?: boolean;
  /** Gives up (and reports status 0) after this long; the socket stays open for the caller to inspect. */
  timeoutMs?: number;
}

/**
 * Sends bytes exactly as given over a fresh TCP connection and reads the
 * first HTTP answer. Unlike fetch or http.request nothing is normalised:
 * `/../`, `%2e%2e`, bad request lines and oversized headers reach the server as written.
 *
 * @example
 *   const a = await wire(port, 'GET /v2/%2e%2e/metrics HTTP/1.1\r\nhost: x\r\n\r\n');
 *   expect(a.status).toBe(400);
 */
export function wire(port: number, head: string | Buffer, options: WireOptions = {}): Promise<WireAnswer> {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let resolveClosed!: (ms: number) => void;
  const closed = new Promise<number>((r) => (resolveClosed = r));
  socket.once('close', () => resolveClosed(Date.now() - started));
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (status: number, headers: Record<string, string>, text: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status, headers, text, json, ms: Date.now() - started, closed, socket, done: () => socket.destroy() });
    };
    const timer = setTimeout(() => finish(0, {}, ''), options.timeoutMs ?? 10_000);
    const parse = (eof: boolean) => {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        if (eof) finish(0, {}, buf.toString('latin1'));
        return;
      }
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const rest = buf.subarray(end + 4);
      const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
      if (length !== undefined && rest.length >= length) finish(status, headers, rest.subarray(0, length).toString('utf8'));
      else if (eof) finish(status, headers, rest.toString('utf8'));
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      parse(false);
    });
    socket.once('close', () => parse(true));
    socket.once('connect', async () => {
      socket.setNoDelay(true);
      socket.write(head);
      for (const part of options.body ?? []) {
        if (socket.destroyed || settled) break;
        if (typeof part === 'function') await part();
        else socket.write(part);
      }
      if (options.end && !socket.destroyed) socket.end();
    });
  });
}

export interface RequestSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** Sent with Content-Length (unless `headers` has transfer-encoding). */
  body?: string | Buffer;
}

/** An HTTP/1.1 request head (and body) as bytes, `connection: close`, for `wire`. */
export function requestBytes(spec: RequestSpec): Buffer {
  const headers: Record<string, string> = { host: '127.0.0.1', connection: 'close', ...spec.headers };
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body);
  if (body && headers['transfer-encoding'] === undefined) headers['content-length'] ??= String(body.length);
  const head = `${spec.method} ${spec.path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
}

/** One request over a fresh connection, bytes as given; the connection is closed afterwards. */
export async function call(port: number, spec: RequestSpec, timeoutMs = 10_000): Promise<WireAnswer> {
  const answer = await wire(port, requestBytes(spec), { timeoutMs });
  answer.done();
  return answer;
}

/** One HTTP/1.1 chunk. */
export function chunk(data: string | Buffer): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
