import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { DROPLET_STATUS_AFTER, resourceDelta } from '../../domain/completion.ts';
import { agentEvent } from '../helpers/agent-event.ts';

const event = (over: Partial<AgentEvent>): AgentEvent =>
  agentEvent({ event_id: 1, event_type: 'create', droplet_id: 7, droplet_status: 'new', customer_id: 1, size_slug: '4gb', size_memory: 4096, size_vcpus: 2, size_disk: 60, server_id: 2, ...over });

describe('what an event does to its host (resourceDelta)', () => {
  it('a create takes its size from the host and adds a VM', () => {
    expect(resourceDelta(event({}))).toEqual({ memfree: -4096, diskfree_actual: -60, vmcount: 1 });
  });

  it('a destroy gives its size back and removes a VM, unless the droplet is already archived', () => {
    expect(resourceDelta(event({ event_type: 'destroy', droplet_status: 'active' }))).toEqual({ memfree: 4096, diskfree_actual: 60, vmcount: -1 });
    expect(resourceDelta(event({ event_type: 'destroy', droplet_status: 'archived' }))).toEqual({ memfree: 0, diskfree_actual: 0, vmcount: 0 });
  });

  it('an event without a droplet, or of another type, changes nothing', () => {
    const none = { memfree: 0, diskfree_actual: 0, vmcount: 0 };
    expect(resourceDelta(event({ droplet_id: null }))).toEqual(none);
    expect(resourceDelta(event({ event_type: 'destroy', droplet_id: null, droplet_status: 'active' }))).toEqual(none);
    expect(resourceDelta(event({ event_type: 'reboot' }))).toEqual(none);
    expect(resourceDelta(event({ event_type: 'power_off' }))).toEqual(none);
  });

  it('a size the event does not carry counts as zero', () => {
    expect(resourceDelta(event({ size_memory: null, size_disk: null }))).toEqual({ memfree: -0, diskfree_actual: -0, vmcount: 1 });
  });

  it('the droplet status each event type leaves', () => {
    expect(DROPLET_STATUS_AFTER).toEqual({ create: 'active', destroy: 'archived', reboot: 'active', power_on: 'active', power_off: 'off' });
    expect(DROPLET_STATUS_AFTER['ipmi_reboot']).toBeUndefined();
  });
});
