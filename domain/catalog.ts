/** The 2016 catalogue: what customers can order. Memory in MB, disk in GB. */
export const SIZES = [
  { slug: '512mb', memory: 512, vcpus: 1, disk: 20, price_monthly: 5 },
  { slug: '1gb', memory: 1024, vcpus: 1, disk: 30, price_monthly: 10 },
  { slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 },
  { slug: '4gb', memory: 4096, vcpus: 2, disk: 60, price_monthly: 40 },
  { slug: '8gb', memory: 8192, vcpus: 4, disk: 80, price_monthly: 80 },
  { slug: '16gb', memory: 16384, vcpus: 8, disk: 160, price_monthly: 160 },
  { slug: '32gb', memory: 32768, vcpus: 12, disk: 320, price_monthly: 320 },
  { slug: '64gb', memory: 65536, vcpus: 20, disk: 640, price_monthly: 640 },
] as const;

export const IMAGES = [
  { slug: 'ubuntu-14-04-x64', name: 'Ubuntu 14.04.5 x64', distribution: 'Ubuntu', min_disk_size: 20 },
  { slug: 'ubuntu-16-04-x64', name: 'Ubuntu 16.04.1 x64', distribution: 'Ubuntu', min_disk_size: 20 },
  { slug: 'debian-8-x64', name: 'Debian 8.6 x64', distribution: 'Debian', min_disk_size: 20 },
  { slug: 'centos-7-x64', name: 'CentOS 7.2 x64', distribution: 'CentOS', min_disk_size: 20 },
  { slug: 'fedora-24-x64', name: 'Fedora 24 x64', distribution: 'Fedora', min_disk_size: 20 },
  { slug: 'freebsd-10-3-x64', name: 'FreeBSD 10.3 x64', distribution: 'FreeBSD', min_disk_size: 20 },
  { slug: 'coreos-stable', name: 'CoreOS 1122.2.0 (stable)', distribution: 'CoreOS', min_disk_size: 20 },
] as const;

export const KERNELS = [
  { name: 'Ubuntu 14.04 x64 vmlinuz-3.13.0-93-generic', version: '3.13.0-93-generic' },
  { name: 'Ubuntu 16.04 x64 vmlinuz-4.4.0-38-generic', version: '4.4.0-38-generic' },
  { name: 'Debian 8 x64 vmlinuz-3.16.0-4-amd64', version: '3.16.0-4-amd64' },
  { name: 'CentOS 7 x64 vmlinuz-3.10.0-327', version: '3.10.0-327.28.3.el7.x86_64' },
] as const;

const REGION_NAMES: Array<[string, string]> = [
  ['nyc1', 'New York 1'],
  ['sfo1', 'San Francisco 1'],
  ['ams2', 'Amsterdam 2'],
  ['sgp1', 'Singapore 1'],
  ['lon1', 'London 1'],
  ['nyc3', 'New York 3'],
  ['ams3', 'Amsterdam 3'],
  ['fra1', 'Frankfurt 1'],
  ['tor1', 'Toronto 1'],
  ['sfo2', 'San Francisco 2'],
  ['blr1', 'Bangalore 1'],
  ['nyc2', 'New York 2'],
];

/** Region slugs: the 2016 ones first, then `reg13`, `reg14`, … for bigger fleets. */
export function regionCatalog(count: number): Array<{ slug: string; name: string }> {
  return Array.from({ length: count }, (_, i) => {
    const known = REGION_NAMES[i];
    return known ? { slug: known[0], name: known[1] } : { slug: `reg${i + 1}`, name: `Region ${i + 1}` };
  });
}

/** Hypervisor hardware generations in the fleet. */
export const SERVER_MODELS = [
  { cpus: 24, memory: 131072, disk: 1920 },
  { cpus: 32, memory: 196608, disk: 3840 },
  { cpus: 40, memory: 262144, disk: 3840 },
  { cpus: 48, memory: 393216, disk: 7680 },
] as const;

/** Memory (MB) and disk (GB) a hypervisor keeps for itself. */
export const HOST_RESERVED = { memory: 2048, disk: 50 } as const;

/** Non-empty `state` values a server may be in; the scheduler skips all of them. */
export const SERVER_STATES = ['maintenance', 'draining', 'provisioning', 'decommissioned'] as const;
