/**
 * Progress lines for long work, on stderr so stdout stays parseable. On a
 * terminal the current line is rewritten; elsewhere (CI, pipes) each update
 * is a line, rate-limited so logs stay short.
 */
export function createProgress(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr, options: { quiet?: boolean } = {}) {
  let lastLineAt = 0;
  let open = false;
  const started = Date.now();
  const stamp = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
  return {
    /** A transient status (rewritten on a TTY; at most one line per 2 s elsewhere). */
    update(text: string): void {
      if (options.quiet) return;
      if (stream.isTTY) {
        stream.write(`\r\x1b[2K${stamp()} ${text}`);
        open = true;
      } else if (Date.now() - lastLineAt > 2000) {
        lastLineAt = Date.now();
        stream.write(`${stamp()} ${text}\n`);
      }
    },
    /** A permanent line. */
    log(text: string): void {
      if (options.quiet) return;
      if (open) stream.write('\n');
      open = false;
      stream.write(`${stamp()} ${text}\n`);
    },
  };
}

export type Progress = ReturnType<typeof createProgress>;
