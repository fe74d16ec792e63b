/**
 * What an agent needs to run an event (a AgentEvent), built in Harpoon
 * mode without a statement on `events`: from the event as Harpoon pushes it
 * (a create's args carry size, image and region) and from caches read once
 * at start-up: sizes, images, the region's hypervisors and its droplets.
 * Droplets created later are learned from their create events on the
 * stream; the completion re-reads a droplet's size anyway (completion.ts).
 *
 * The agent's own use of the row is resourceDelta (domain/completion.ts):
 * event_type, droplet_id, droplet_status, size_memory, size_disk.
 */
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { HarpoonEvent } from '../harpoon/types.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';

interface Size {
  id: number;
  slug: string;
  memory: number;
  vcpus: number;
  disk: number;
}

interface Droplet {
  name: string | null;
  customerId: number | null;
  sizeId: number | null;
  imageId: number | null;
  status: string;
}

const STATUS_AFTER: Record<string, string | undefined> = { create: 'active', destroy: 'archived', reboot: 'active', power_on: 'active', power_off: 'off' };

export interface ContextCaches {
  /** The AgentEvent the agent is sent for this event (the event must have a server_id). */
  row(event: HarpoonEvent): AgentEvent;
  /** Keeps the droplet cache current from the stream: a create teaches a droplet, a done moves its status. */
  learn(event: HarpoonEvent): void;
  readonly droplets: number;
}

function argsOf(event: HarpoonEvent): Record<string, unknown> {
  return event.args !== null && typeof event.args === 'object' && !Array.isArray(event.args) ? (event.args as Record<string, unknown>) : {};
}

/** Reads the caches: four statements at start-up, none afterwards. */
export async function loadContextCaches(pool: Pool, regionId: number): Promise<ContextCaches> {
  const [sizeRows] = await pool.query<RowDataPacket[]>('SELECT id, slug, memory, vcpus, disk FROM sizes');
  const [imageRows] = await pool.query<RowDataPacket[]>('SELECT id, slug FROM images');
  const [serverRows] = await pool.query<RowDataPacket[]>('SELECT id, name FROM servers WHERE region_id = ?', [regionId]);
  const [dropletRows] = await pool.query<RowDataPacket[]>(
    "SELECT id, name, customer_id, size_id, image_id, status FROM droplets WHERE region_id = ? AND status <> 'archived'",
    [regionId],
  );
  const sizesById = new Map<number, Size>();
  const sizesBySlug = new Map<string, Size>();
  for (const r of sizeRows) {
    const s: Size = { id: Number(r.id), slug: String(r.slug), memory: Number(r.memory), vcpus: Number(r.vcpus), disk: Number(r.disk) };
    sizesById.set(s.id, s);
    sizesBySlug.set(s.slug, s);
  }
  const imagesById = new Map<number, string>(imageRows.map((r) => [Number(r.id), String(r.slug)]));
  const imagesBySlug = new Map<string, number>(imageRows.map((r) => [String(r.slug), Number(r.id)]));
  const servers = new Map<number, string>(serverRows.map((r) => [Number(r.id), String(r.name)]));
  const droplets = new Map<number, Droplet>(
    dropletRows.map((r) => [
      Number(r.id),
      { name: String(r.name), customerId: Number(r.customer_id), sizeId: Number(r.size_id), imageId: Number(r.image_id), status: String(r.status) },
    ]),
  );

  return {
    get droplets() {
      return droplets.size;
    },
    learn(event) {
      if (!event.droplet_id) return;
      let d = droplets.get(event.droplet_id);
      if (!d && event.type === 'create') {
        const args = argsOf(event);
        d = {
          name: null,
          customerId: event.customer_id,
          sizeId: typeof args.size === 'string' ? (sizesBySlug.get(args.size)?.id ?? null) : null,
          imageId: typeof args.image === 'string' ? (imagesBySlug.get(args.image) ?? null) : null,
          status: 'new',
        };
        droplets.set(event.droplet_id, d);
      }
      if (d && event.status === 'done') {
        const after = STATUS_AFTER[event.type];
        if (after === 'archived') droplets.delete(event.droplet_id);
        else if (after) d.status = after;
      }
    },
    row(event) {
      const args = argsOf(event);
      const d = event.droplet_id ? droplets.get(event.droplet_id) : undefined;
      const size = (typeof args.size === 'string' ? sizesBySlug.get(args.size) : undefined) ?? (d?.sizeId ? sizesById.get(d.sizeId) : undefined);
      const image = typeof args.image === 'string' ? args.image : d?.imageId ? (imagesById.get(d.imageId) ?? null) : null;
      const serverId = event.server_id ?? 0;
      return {
        event_id: event.id,
        event_type: event.type,
        event_status: event.status,
        event_args: event.args === null || event.args === undefined ? null : JSON.stringify(event.args),
        event_created_at: event.created_at,
        event_available_at: event.available_at,
        droplet_id: event.droplet_id,
        droplet_name: d?.name ?? null,
        droplet_status: d?.status ?? (event.droplet_id ? (event.type === 'create' ? 'new' : null) : null),
        customer_id: event.customer_id ?? d?.customerId ?? null,
        size_slug: size?.slug ?? null,
        size_memory: size?.memory ?? null,
        size_vcpus: size?.vcpus ?? null,
        size_disk: size?.disk ?? null,
        image_slug: image,
        server_id: serverId,
        server_name: servers.get(serverId) ?? `hv-${serverId}`,
        ssh_fingerprints: null,
        features: Array.isArray(args.features) && args.features.length > 0 ? args.features.map(String).join(',') : null,
        ip_addresses: null,
        server_running_events: 0,
        customer_droplets_on_server: 0,
      };
    },
  };
}
