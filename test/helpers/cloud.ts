import { Registry } from 'prom-client';
import { createCloud, type Cloud, type CloudOptions } from '../../cloud/create-cloud.ts';
import type { TestDatabase } from './database.ts';
import { directEvents } from '../../legacy/cloud/direct-events.ts';

export interface TestCloud {
  cloud: Cloud;
  url: string;
  registry: Registry;
}

/** A real Cloud on a free port, connected as the `cloud` MySQL user of the test database, with its legacy direct event path unless `directEvents: undefined` is given. */
export async function startTestCloud(t: TestDatabase, options: Partial<CloudOptions> = {}): Promise<TestCloud> {
  const registry = new Registry();
  const cloud = createCloud({ db: t.service('cloud'), registry, directEvents, ...options });
  try {
    const { url } = await cloud.start();
    return { cloud, url, registry };
  } catch (err) {
    await cloud.close();
    throw err;
  }
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or undefined for an empty body. */
  body: any;
}

export interface ApiRequest {
  token?: string;
  /** Sent as JSON with Content-Type: application/json. */
  json?: unknown;
  /** Sent verbatim; set the content type through `headers`. */
  raw?: string;
  headers?: Record<string, string>;
}

/** fetch against a Cloud, returning the status and parsed body. */
export function cloudClient(url: string) {
  return async function call(method: string, path: string, request: ApiRequest = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...request.headers };
    if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;
    let body: string | undefined;
    if (request.json !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(request.json);
    } else if (request.raw !== undefined) {
      body = request.raw;
    }
    const res = await fetch(url + path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
  };
}
