import { readFile } from 'node:fs/promises';

/**
 * A process's resident memory now (VmRSS) and at its peak (VmHWM), in bytes, and its OS thread count,
 * from /proc/<pid>/status; zeros where /proc cannot tell (not Linux, or the process is gone).
 *
 * @example
 *   const { peakBytes } = await readProcessMemory(server.pid); // VmHWM, bytes
 */
export async function readProcessMemory(pid: number): Promise<{ rssBytes: number; peakBytes: number; threads: number }> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rssBytes: field('VmRSS') * 1024, peakBytes: field('VmHWM') * 1024, threads: field('Threads') };
  } catch {
    return { rssBytes: 0, peakBytes: 0, threads: 0 };
  }
}
