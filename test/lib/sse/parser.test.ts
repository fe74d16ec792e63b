import { describe, expect, it } from 'vitest';
import { createSseParser, type SseMessage } from '../../../lib/sse/parser.ts';

function parse(chunks: string[]): { messages: SseMessage[]; comments: string[] } {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const p = createSseParser((m) => messages.push(m), { onComment: (c) => comments.push(c) });
  for (const c of chunks) p.push(c);
  return { messages, comments };
}

/** Cuts `text` at every position in `cuts` (sorted, in range). */
function split(text: string, cuts: number[]): string[] {
  const out: string[] = [];
  let at = 0;
  for (const c of cuts) {
    out.push(text.slice(at, c));
    at = c;
  }
  out.push(text.slice(at));
  return out;
}

describe('the SSE parser (lib/sse/parser.ts)', () => {
  const big = 'x'.repeat(200_000);
  const stream =
    `: hello\r\nretry: 1000\n\nid: 1\nevent: changes\ndata: [${big}]\n\n` +
    'id: 2\r\ndata: a\r\ndata: b\r\n\r\n' +
    'id: 3\rdata: lone cr\r\r' +
    `data: ${big.slice(0, 70_000)}\n\n`;
  const whole = parse([stream]);

  it('reads the same messages whatever the chunk boundaries: \\r\\n split in two, lone \\r, a long line over many chunks', () => {
    expect(whole.messages.map((m) => [m.id, m.event, m.data.length])).toEqual([
      ['1', 'changes', big.length + 2],
      ['2', 'message', 3],
      ['3', 'message', 7],
      [undefined, 'message', 70_000],
    ]);
    expect(whole.comments).toEqual(['hello']);
    // Every \r (the first half of a \r\n among them) at a chunk's end, and the long lines cut every 997 characters.
    const crs = [...stream.matchAll(/\r/g)].map((m) => m.index! + 1);
    const everywhere = [...new Set([...crs, ...Array.from({ length: Math.floor(stream.length / 997) }, (_, k) => (k + 1) * 997)])].sort((a, b) => a - b);
    expect(parse(split(stream, everywhere))).toEqual(whole);
    // One character at a time over the short part.
    const short = stream.slice(stream.indexOf('id: 2'), stream.indexOf('data: xxx'));
    expect(parse(short.split('')).messages).toEqual(parse([short]).messages);
  });
});
