/**
 * The router's Server-Sent-Events writing: the response headers a stream
 * needs through proxies, and a bounded write (an agent that stops reading
 * is cut off instead of growing our memory).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A stream whose reader stops is cut off past this much unsent data; its events are re-sent on reconnect. */
export const MAX_BUFFERED_BYTES = 1 << 20;

/** Starts an SSE response: no caching, no buffering by proxies, Nagle off (each frame is latency). */
export function startSse(req: IncomingMessage, res: ServerResponse, preamble: string): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.on('error', () => {});
  req.socket.setNoDelay(true);
  res.write(preamble);
}

export type SseWriteResult = 'written' | 'closed' | 'overflow';

/** Writes one frame unless the response has ended, or its reader is more than MAX_BUFFERED_BYTES behind (then destroyed). */
export function writeSse(res: ServerResponse, frame: string): SseWriteResult {
  if (res.writableEnded || res.destroyed) return 'closed';
  if (res.writableLength > MAX_BUFFERED_BYTES) {
    res.destroy();
    return 'overflow';
  }
  res.write(frame);
  return 'written';
}
