import { createHash, randomBytes } from 'node:crypto';
import { HOST_RESERVED, IMAGES, KERNELS, SERVER_MODELS, SERVER_STATES, SIZES, regionCatalog } from '../../domain/catalog.ts';
import { createRandom, type Random } from './prng.ts';
import type { HostRow } from '../../domain/host.ts';

export interface SeedOptions {
  hypervisors: number;
  regions: number;
  /** The seed number: the same number always yields the same rows (customer API tokens aside: those are random). */
  seed?: number;
  /** Customers; default one per four hypervisors (at least 20). */
  customers?: number;
}

/** A hypervisor row: the same columns Scheduler V1 ranks on. */
export type SeedServer = HostRow;

export interface SeedDroplet {
  id: number;
  customer_id: number;
  name: string;
  region_id: number;
  size_id: number;
  image_id: number;
  kernel_id: number;
  server_id: number;
  status: string;
}

export interface SeedData {
  /** The seed number the data was generated from. */
  seed: number;
  regions: Array<{ id: number; slug: string; name: string }>;
  sizes: Array<{ id: number; slug: string; memory: number; vcpus: number; disk: number; price_monthly: number }>;
  images: Array<{ id: number; slug: string; name: string; distribution: string; min_disk_size: number }>;
  kernels: Array<{ id: number; name: string; version: string }>;
  customers: Array<{ id: number; email: string; name: string; api_token_sha256: string; droplet_limit: number }>;
  /** Bearer tokens by customer id; only their digests go into the database. */
  tokens: Map<number, string>;
  sshKeys: Array<{ id: number; customer_id: number; name: string; fingerprint: string; public_key: string }>;
  servers: SeedServer[];
  droplets: SeedDroplet[];
  dropletSshKeys: Array<{ droplet_id: number; ssh_key_id: number }>;
  ipAddresses: Array<{ droplet_id: number; region_id: number; address: string; type: string }>;
  /** Pending maintenance events that make some servers busy at start. */
  events: Array<{ droplet_id: null; region_id: number; type: string; server_id: number; status: string; args: string }>;
  /** How many servers of each kind the generator made, for the report. */
  profile: Record<'normal' | 'full' | 'erroring' | 'stateful' | 'busy', number>;
}

/**
 * A fresh bearer token for a seeded customer: random, so nobody derives a
 * customer's token from the repository (the seed number and id are public).
 * Only its digest goes into the database; the generator's `tokens` map is
 * the one place it is known, handed to whoever drives traffic in this run.
 *
 * @example
 *   const token = customerToken(); // 'dop_v1_…' (40 hex characters after the prefix)
 */
export function customerToken(): string {
  return 'dop_v1_' + randomBytes(20).toString('hex');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

type Profile = keyof SeedData['profile'];

function pickProfile(rand: Random): Profile {
  const r = rand.next();
  if (r < 0.04) return 'erroring';
  if (r < 0.06) return 'stateful';
  if (r < 0.11) return 'full';
  if (r < 0.14) return 'busy';
  return 'normal';
}

/**
 * Generates a whole legacy world: catalogue, customers, N hypervisors
 * across R regions with realistic variety (full, erroring, in a non-empty
 * state, busy), and the droplets already running on them. Pure and
 * deterministic for a given seed.
 *
 * @example
 *   const data = generateSeed({ hypervisors: 200, regions: 3, seed: 1 });
 */
export function generateSeed(options: SeedOptions): SeedData {
  const seed = options.seed ?? 1;
  const rand = createRandom(seed);
  const regions = regionCatalog(options.regions).map((r, i) => ({ id: i + 1, ...r }));
  const sizes = SIZES.map((s, i) => ({ id: i + 1, ...s }));
  const images = IMAGES.map((img, i) => ({ id: i + 1, ...img }));
  const kernels = KERNELS.map((k, i) => ({ id: i + 1, ...k }));
  const customerCount = options.customers ?? Math.max(20, Math.ceil(options.hypervisors / 4));
  const tokens = new Map<number, string>();
  const customers = Array.from({ length: customerCount }, (_, i) => {
    const id = i + 1;
    const token = customerToken();
    tokens.set(id, token);
    // A generous limit: the demo's traffic must not be refused for quota.
    return { id, email: `customer${id}@example.com`, name: `Customer ${id}`, api_token_sha256: sha256(token), droplet_limit: 1000 };
  });
  const sshKeys = customers.map((c) => ({
    id: c.id,
    customer_id: c.id,
    name: `laptop-${c.id}`,
    fingerprint: createHash('md5').update(`key-${seed}-${c.id}`).digest('hex').replace(/(..)(?!$)/g, '$1:'),
    public_key: `ssh-rsa AAAAB3NzaC1yc2E${createHash('sha1').update(`pk-${c.id}`).digest('base64')} customer${c.id}`,
  }));

  const servers: SeedServer[] = [];
  const droplets: SeedDroplet[] = [];
  const dropletSshKeys: SeedData['dropletSshKeys'] = [];
  const ipAddresses: SeedData['ipAddresses'] = [];
  const events: SeedData['events'] = [];
  const profile: SeedData['profile'] = { normal: 0, full: 0, erroring: 0, stateful: 0, busy: 0 };
  const perRegion = new Map<number, number>();
  // Seeded droplets lean large: they stand for a host's existing tenants, and fewer rows seed faster.
  const tenantSizes = sizes.filter((s) => s.memory >= 2048);

  for (let i = 0; i < options.hypervisors; i++) {
    const region = regions[i % regions.length]!;
    const index = (perRegion.get(region.id) ?? 0) + 1;
    perRegion.set(region.id, index);
    const model = rand.pick(SERVER_MODELS);
    const kind = pickProfile(rand);
    profile[kind]++;
    const server: SeedServer = {
      id: i + 1,
      name: `${region.slug}-hv${String(index).padStart(4, '0')}`,
      region_id: region.id,
      ...model,
      vmcount: 0,
      memfree: model.memory - HOST_RESERVED.memory,
      diskfree_actual: model.disk - HOST_RESERVED.disk,
      error_count: kind === 'erroring' ? rand.int(4, 9) : rand.int(0, 2),
      state: kind === 'stateful' ? rand.pick(SERVER_STATES) : '',
    };
    const place = (size: (typeof sizes)[number]) => {
      const id = droplets.length + 1;
      const customerId = rand.int(1, customerCount);
      droplets.push({
        id,
        customer_id: customerId,
        name: `droplet-${id}`,
        region_id: region.id,
        size_id: size.id,
        image_id: rand.pick(images).id,
        kernel_id: rand.pick(kernels).id,
        server_id: server.id,
        status: 'active',
      });
      if (rand.chance(0.7)) dropletSshKeys.push({ droplet_id: id, ssh_key_id: customerId });
      ipAddresses.push({ droplet_id: id, region_id: region.id, address: `10.${(id >> 16) & 255}.${(id >> 8) & 255}.${id & 255}`, type: 'public' });
      server.vmcount++;
      server.memfree -= size.memory;
      server.diskfree_actual -= size.disk;
    };
    const fits = (size: (typeof sizes)[number]) => server.memfree >= size.memory && server.diskfree_actual >= size.disk;
    if (kind === 'full') {
      // Packed until nothing in the catalogue fits: memfree under 512 MB.
      for (const size of [...tenantSizes].reverse()) while (fits(size)) place(size);
      while (fits(sizes[0]!)) place(sizes[0]!);
    } else {
      const target = (model.memory - HOST_RESERVED.memory) * (0.1 + rand.next() * 0.6);
      while (model.memory - HOST_RESERVED.memory - server.memfree < target) {
        const size = rand.pick(tenantSizes);
        if (!fits(size)) break;
        place(size);
      }
    }
    if (kind === 'busy') {
      events.push({
        droplet_id: null,
        region_id: region.id,
        type: rand.pick(['restore', 'pdu_reboot', 'ipmi_reboot', 'node_unresponsive'] as const),
        server_id: server.id,
        status: 'pending',
        args: JSON.stringify({ reason: 'seeded maintenance' }),
      });
    }
    servers.push(server);
  }
  return { seed, regions, sizes, images, kernels, customers, tokens, sshKeys, servers, droplets, dropletSshKeys, ipAddresses, events, profile };
}
