import { createServer, request, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createSseParser, type SseMessage } from '../../../lib/sse/parser.ts';
import { createSseWriter, forEachInSlices, SharedFrame, startSse, type SseWriteResult } from '../../../lib/sse/writer.ts';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A real server whose every request becomes an SSE answer handed to `onStream`. */
async function sseServer(onStream: (res: ServerResponse) => void): Promise<number> {
  server = createServer((req, res) => {
    startSse(req, res, 'retry: 1000\n: test\n\n');
    onStream(res);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Reads a stream with the tree's SSE parser until `count` messages arrived. */
function readMessages(port: number, count: number): Promise<SseMessage[]> {
  return new Promise((resolve, reject) => {
    const got: SseMessage[] = [];
    const req = request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      const parser = createSseParser((m) => {
        got.push(m);
        if (got.length === count) {
          req.destroy();
          resolve(got);
        }
      });
      res.setEncoding('utf8');
      res.on('data', (c: string) => parser.push(c));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the SSE writer (lib/sse/writer.ts)', () => {
  it('delivers every frame, plain and shared, byte-exact to each reading client', async () => {
    const sse = createSseWriter({ maxBufferedBytes: 1 << 20 });
    const clients: ServerResponse[] = [];
    let connected!: () => void;
    const both = new Promise<void>((r) => (connected = r));
    const port = await sseServer((res) => {
      clients.push(res);
      if (clients.length === 2) connected();
    });
    const a = readMessages(port, 3);
    const b = readMessages(port, 3);
    await both;
    // Let the headers reach the clients: the shared chunk is written raw only once they are out.
    await new Promise((r) => setTimeout(r, 50));
    const results: SseWriteResult[] = [];
    const shared = new SharedFrame('id: 2\nevent: change\ndata: {"ünïcode":"✓"}\n\n');
    for (const res of clients) results.push(sse.write(res, 'id: 1\ndata: first\n\n'), sse.write(res, shared), sse.write(res, 'data: multi\ndata: line\n\n'));
    expect(results.every((r) => r === 'written')).toBe(true);
    const expected = [
      { event: 'message', data: 'first', id: '1' },
      { event: 'change', data: '{"ünïcode":"✓"}', id: '2' },
      { event: 'message', data: 'multi\nline' },
    ];
    expect(await a).toEqual(expected);
    expect(await b).toEqual(expected);
  });

  it('cuts off a client that stops reading once it is past the bound, counts it once, and never buffers much beyond it', async () => {
    const max = 256 * 1024;
    const slow: ServerResponse[] = [];
    const sse = createSseWriter({ maxBufferedBytes: max, onSlowClient: (res) => slow.push(res) });
    let stream!: (res: ServerResponse) => void;
    const opened = new Promise<ServerResponse>((r) => (stream = r));
    const port = await sseServer((res) => stream(res));
    // A client that sends its request and then never reads a byte.
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    socket.pause();
    const res = await opened;
    const frame = new SharedFrame(`data: ${'x'.repeat(16 * 1024)}\n\n`);
    let result: SseWriteResult = 'written';
    let written = 0;
    let maxBuffered = 0;
    // Kernel buffers take a few MB first; the bound applies to what is left in the process.
    while (result === 'written' && written < 512 << 20) {
      result = sse.write(res, frame);
      if (result === 'written') written += frame.text.length;
      maxBuffered = Math.max(maxBuffered, res.writableLength);
      if (written % (1 << 20) < frame.text.length) await new Promise((r) => setImmediate(r));
    }
    expect(result).toBe('overflow');
    expect(slow).toEqual([res]);
    expect(maxBuffered).toBeLessThanOrEqual(max + frame.chunk().length);
    expect(res.destroyed).toBe(true);
    // Gone now: further writes say so and are not counted again.
    expect(sse.write(res, frame)).toBe('closed');
    expect(slow).toHaveLength(1);
    socket.destroy();
  });

  it('refuses a bound that is not a positive integer, naming the option', () => {
    expect(() => createSseWriter({ maxBufferedBytes: 0 })).toThrow(expect.objectContaining({ code: 'CONFIG_ERR_INVALID_OPTION', message: expect.stringContaining('maxBufferedBytes') }));
  });

  it('forEachInSlices visits every item once, in order, giving the event loop a turn between slices', async () => {
    const items = Array.from({ length: 1203 }, (_, i) => i);
    const seen: number[] = [];
    /** The items visited when each setImmediate callback queued before the pass ran. */
    const between: number[] = [];
    const pass = forEachInSlices(items, 500, (i) => seen.push(i));
    // The first slice runs at the call; each later one only after a turn of the loop.
    expect(seen.length).toBe(500);
    for (let k = 0; k < 3; k++) await new Promise<void>((r) => setImmediate(() => (between.push(seen.length), r())));
    await pass;
    expect(seen).toEqual(items);
    // A callback queued behind the pass ran between its slices, not after all of them.
    expect(between[0]).toBe(1000);
    await expect(forEachInSlices(items, 0, () => {})).rejects.toThrow(/slice/);
  });
});

