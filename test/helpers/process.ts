/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until a supervised slot runs a process other than `oldPid` that
 * answers `<url>/readyz` with 200, and returns the slot as then listed.
 *
 * @example
 *   const back = await waitForReplacement(() => sup.list().find((p) => p.name === 'r1')!, victim.pid);
 */
export async function waitForReplacement<T extends { url: string; pid: number; up: boolean }>(slot: () => T, oldPid: number, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = slot();
    if (now.up && now.pid !== oldPid) {
      const res = await fetch(`${now.url}/readyz`).catch(() => undefined);
      await res?.body?.cancel().catch(() => {});
      if (res?.status === 200) return now;
    }
    if (Date.now() > deadline) throw new Error(`no replacement of pid ${oldPid} answered ${now.url}/readyz within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
