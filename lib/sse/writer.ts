/**
 * The one Server-Sent-Events writer: every SSE answer in the tree (the Event
 * Router's agent streams, Harpoon's change stream and its peer push) starts
 * and writes through here, with one backpressure policy: a bounded buffer
 * per client. A client more than `maxBufferedBytes` behind is cut off (its
 * socket destroyed) and counted through `onSlowClient`; it reconnects and
 * resumes from its own cursor (Last-Event-ID), so the server's memory
 * stays bounded whatever a reader does. Frames are never dropped silently
 * from an open stream: a stream either carries every frame or ends.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalidOption } from '../errors.ts';

/** The bound when a service does not set one: 1 MiB of unsent frames per client. */
export const DEFAULT_MAX_BUFFERED_BYTES = 1 << 20;

/**
 * Starts an SSE answer: no caching, no buffering by proxies (nginx honours
 * x-accel-buffering), Nagle off (each frame is latency), then the preamble
 * (`retry:` and a comment naming the stream, typically).
 *
 * @example
 *   startSse(req, res, `retry: 2000\n: event router nyc1\n\n`);
 */
export function startSse(req: IncomingMessage | undefined, res: ServerResponse, preamble: string): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  // A client that goes away mid-write is the writer's 'closed', not an unhandled error.
  res.on('error', () => {});
  (req?.socket ?? res.socket)?.setNoDelay(true);
  if (preamble !== '') res.write(preamble);
}

/**
 * One frame written to many clients: its text, and (made once, on first
 * use) the same bytes as one HTTP/1.1 chunk. A fan-out writes that chunk
 * straight to each socket instead of paying res.write's framing per client.
 */
export class SharedFrame {
  #chunk: Buffer | undefined;
  constructor(readonly text: string) {}
  /** `<size hex>\r\n<frame>\r\n`. */
  chunk(): Buffer {
    if (!this.#chunk) {
      const body = Buffer.from(this.text);
      this.#chunk = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]);
    }
    return this.#chunk;
  }
}

export type SseWriteResult = 'written' | 'closed' | 'overflow';

export interface SseWriterOptions {
  /** Unsent bytes (the response's buffer, its socket's included) past which a client is cut off. */
  maxBufferedBytes?: number;
  /** Called once for each client cut off for not reading: count it (a metric), log it. */
  onSlowClient?: (res: ServerResponse) => void;
}

export interface SseWriter {
  /** Writes one frame: 'written', 'closed' (the client is gone), or 'overflow' (the client was too slow and is now cut off). */
  write(res: ServerResponse, frame: string | SharedFrame): SseWriteResult;
  /** How many bytes of this client's frames are still unsent. */
  buffered(res: ServerResponse): number;
  readonly maxBufferedBytes: number;
}

/**
 * The bounded writer, configured once per service.
 *
 * @example
 *   const sse = createSseWriter({ maxBufferedBytes: 4 << 20, onSlowClient: () => metrics.slowCutoffs.inc() });
 *   startSse(req, res, 'retry: 1000\n\n');
 *   if (sse.write(res, `id: 7\ndata: {}\n\n`) !== 'written') forget(res);
 */
export function createSseWriter(options: SseWriterOptions = {}): SseWriter {
  const max = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  if (!Number.isSafeInteger(max) || max < 1) throw invalidOption('maxBufferedBytes', max, 'a positive integer');
  // OutgoingMessage.writableLength already counts its socket's buffer, raw chunk writes included.
  const buffered = (res: ServerResponse) => res.writableLength;
  return {
    maxBufferedBytes: max,
    buffered,
    write(res, frame) {
      if (res.writableEnded || res.destroyed) return 'closed';
      if (buffered(res) > max) {
        res.destroy();
        options.onSlowClient?.(res);
        return 'overflow';
      }
      const socket = res.socket;
      // The raw chunk only once the headers are out and the answer is chunked, so the byte stream stays
      // exactly what the HTTP parser on the other end expects.
      if (typeof frame !== 'string' && socket && res.headersSent && (res as unknown as { chunkedEncoding?: boolean }).chunkedEncoding === true) {
        socket.write(frame.chunk());
      } else {
        res.write(typeof frame === 'string' ? frame : frame.text);
      }
      return 'written';
    },
  };
}

/** Clients written per turn of the event loop by a periodic pass over every client (a heartbeat). */
export const FAN_OUT_SLICE = 500;

/**
 * Calls `each` for every item, `slice` items per turn of the event loop,
 * yielding (setImmediate) between slices: a heartbeat written to thousands
 * of clients in one synchronous pass holds the loop long enough to delay
 * every live frame and request behind it. The items are taken as they are
 * at the call (a copy); `each` must cope with an item that went away since
 * (a closed client), which the writer reports as 'closed'.
 *
 * @example
 *   const hb = new SharedFrame(': hb\n\n');
 *   await forEachInSlices([...streams.values()], FAN_OUT_SLICE, (s) => sse.write(s.res, hb));
 */
export async function forEachInSlices<T>(items: Iterable<T>, slice: number, each: (item: T) => void): Promise<void> {
  if (!Number.isSafeInteger(slice) || slice < 1) throw invalidOption('slice', slice, 'a positive integer');
  const all = [...items];
  for (let i = 0; i < all.length; i += slice) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const end = Math.min(all.length, i + slice);
    for (let k = i; k < end; k++) each(all[k]!);
  }
}
