/**
 * One event as a DOBE agent executes it: the event, its droplet's context and
 * its host. The god query (legacy) selected it from MySQL; the Event Router
 * sends the same JSON over its stream (router/protocol.ts), whichever source
 * it reads from.
 *
 * @example
 *   const event = JSON.parse(frame.data) as AgentEvent;
 *   if (event.event_type === 'create') … // size_memory, size_disk, server_id
 */
export interface AgentEvent {
  event_id: number;
  event_type: string;
  event_status: string;
  event_args: string | null;
  event_created_at: string;
  event_available_at: string | null;
  droplet_id: number | null;
  droplet_name: string | null;
  droplet_status: string | null;
  customer_id: number | null;
  size_slug: string | null;
  size_memory: number | null;
  size_vcpus: number | null;
  size_disk: number | null;
  image_slug: string | null;
  server_id: number;
  server_name: string;
  ssh_fingerprints: string | null;
  features: string | null;
  ip_addresses: string | null;
  server_running_events: number;
  customer_droplets_on_server: number;
}
