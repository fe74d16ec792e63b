/**
 * Rows to the JSON shapes of DigitalOcean's public v2 API, so clients
 * written against that API read this one unchanged.
 */

/** A droplet joined with its region, size and image, as droplet-store reads it. */
export interface DropletRecord {
  id: number;
  name: string;
  status: string;
  locked: number | boolean;
  created_at: string;
  server_id: number | null;
  region_id: number;
  region_slug: string;
  region_name: string;
  size_slug: string;
  memory: number;
  vcpus: number;
  disk: number;
  image_id: number;
  image_slug: string;
  image_name: string;
  image_distribution: string;
  features: string[];
  ips: Array<{ address: string; type: string }>;
}

/** An events row with its region's slug. */
export interface EventRecord {
  id: number;
  type: string;
  status: string;
  droplet_id: number | null;
  region_slug: string;
  created_at: string;
  finished_at: string | null;
}

export interface DropletJson {
  id: number;
  name: string;
  memory: number;
  vcpus: number;
  disk: number;
  locked: boolean;
  status: string;
  created_at: string;
  image: { id: number; slug: string; name: string; distribution: string };
  size_slug: string;
  region: { slug: string; name: string };
  networks: { v4: Array<{ ip_address: string; type: string }> };
  features: string[];
}

export interface ActionJson {
  id: number;
  status: 'in-progress' | 'completed' | 'errored';
  type: string;
  started_at: string;
  completed_at: string | null;
  resource_id: number | null;
  resource_type: 'droplet';
  region_slug: string;
}

/**
 * `2016-05-04 12:00:00.123` (the pool's UTC date strings) to the API's
 * `2016-05-04T12:00:00Z`. Left as text: parsing through Date would bring
 * the host's zone back in.
 */
export function isoTime(value: string): string {
  return value.replace(' ', 'T').replace(/\.\d+$/, '') + 'Z';
}

export function serializeDroplet(d: DropletRecord): DropletJson {
  return {
    id: d.id,
    name: d.name,
    memory: d.memory,
    vcpus: d.vcpus,
    disk: d.disk,
    locked: Boolean(d.locked),
    status: d.status,
    created_at: isoTime(d.created_at),
    image: { id: d.image_id, slug: d.image_slug, name: d.image_name, distribution: d.image_distribution },
    size_slug: d.size_slug,
    region: { slug: d.region_slug, name: d.region_name },
    networks: { v4: d.ips.map((ip) => ({ ip_address: ip.address, type: ip.type })) },
    features: d.features,
  };
}

const ACTION_STATUS: Record<string, ActionJson['status']> = {
  pending: 'in-progress',
  running: 'in-progress',
  done: 'completed',
  error: 'errored',
};

/**
 * An event as a DO action. `started_at` is when the API accepted it (DO's
 * meaning), not when a hypervisor picked it up; `completed_at` is when the
 * hypervisor finished, whether it succeeded or not.
 */
export function serializeAction(e: EventRecord): ActionJson {
  return {
    id: e.id,
    status: ACTION_STATUS[e.status] ?? 'in-progress',
    type: e.type,
    started_at: isoTime(e.created_at),
    completed_at: e.finished_at === null ? null : isoTime(e.finished_at),
    resource_id: e.droplet_id,
    resource_type: 'droplet',
    region_slug: e.region_slug,
  };
}

/** GET /v2/actions and GET /v2/droplets/:id/actions: DO's list shape, newest first (Cloud and Harpoon alike). */
export interface ActionListJson {
  actions: ActionJson[];
  links: { pages?: Record<string, string> };
  meta: { total: number };
}

/** Harpoon's ISO time (`2016-05-04T12:00:00.123Z`) as the pool's date string, so serializeAction reads both alike. */
function fromIso(value: string): string {
  return value.replace('T', ' ').replace(/Z$/, '');
}

/**
 * An event as Harpoon serves it (GET /v1/events, a create's answer) as the
 * same DO action Cloud serialises from an events row.
 */
export function serializeHarpoonAction(e: { id: number; type: string; status: string; droplet_id: number | null; region: string; created_at: string; finished_at: string | null }): ActionJson {
  return serializeAction({
    id: e.id,
    type: e.type,
    status: e.status,
    droplet_id: e.droplet_id,
    region_slug: e.region,
    created_at: fromIso(e.created_at),
    finished_at: e.finished_at === null ? null : fromIso(e.finished_at),
  });
}

/** DO's `links.pages` for a list at `path`: present only when there is more than one page. */
export function pageLinks(path: string, page: number, perPage: number, total: number): { pages?: Record<string, string> } {
  const last = Math.max(1, Math.ceil(total / perPage));
  if (last === 1) return {};
  const href = (p: number) => `${path}?page=${p}&per_page=${perPage}`;
  const pages: Record<string, string> = {};
  if (page > 1) {
    pages.first = href(1);
    pages.prev = href(Math.min(page - 1, last));
  }
  if (page < last) {
    pages.next = href(page + 1);
    pages.last = href(last);
  }
  return { pages };
}
