import type { AgentEvent } from '../../contracts/agent-event.ts';

/**
 * An AgentEvent as the god query or the router would hand it to a completion: a running reboot on
 * host 1 with no droplet, unless `over` says otherwise.
 *
 * @example
 *   const row = agentEvent({ event_id: id, event_type: 'create', droplet_id: 7, size_memory: 2048, size_disk: 40 });
 */
export function agentEvent(over: Partial<AgentEvent> = {}): AgentEvent {
  return {
    event_id: 1, event_type: 'reboot', event_status: 'running', event_args: null, event_created_at: '', event_available_at: null,
    droplet_id: null, droplet_name: null, droplet_status: null, customer_id: null, size_slug: null, size_memory: null, size_vcpus: null,
    size_disk: null, image_slug: null, server_id: 1, server_name: 'hv', ssh_fingerprints: null, features: null, ip_addresses: null,
    server_running_events: 0, customer_droplets_on_server: 0, ...over,
  };
}
