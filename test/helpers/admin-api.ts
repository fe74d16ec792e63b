/**
 * JSON requests to the cutover admin API with a bearer token; `base` is read per request, so a test can
 * make the client before its admin has a port.
 *
 * @example
 *   const api = adminApi(() => url, TOKEN);
 *   const res = await api('POST', '/cutover/lockdown/advance', { reason: 'x' }); // res.status, res.body.code
 */
export function adminApi(base: () => string, token: string) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
}
