import type { Knex } from 'knex';
import { cloudError } from './errors.ts';
import { quote } from '../lib/errors.ts';
import type { CreateDropletRequest } from './validate.ts';

export interface ResolvedOrder {
  region: { id: number; slug: string; name: string };
  size: { id: number; slug: string; memory: number; vcpus: number; disk: number };
  image: { id: number; slug: string; name: string; distribution: string; min_disk_size: number };
  sshKeyIds: number[];
}

/**
 * Turns the slugs and key ids of a create request into rows, or refuses
 * with a 422 naming what was not found and what would have been. Runs
 * before the write transaction: the catalogue is read-only to Cloud, so
 * nothing here needs the transaction's locks.
 */
export async function resolveOrder(db: Knex, customerId: number, request: CreateDropletRequest): Promise<ResolvedOrder> {
  const [region, size, image] = await Promise.all([
    bySlug<ResolvedOrder['region'] & { available: number | boolean }>(db, 'regions', request.region, ['id', 'slug', 'name', 'available']),
    bySlug<ResolvedOrder['size']>(db, 'sizes', request.size, ['id', 'slug', 'memory', 'vcpus', 'disk']),
    bySlug<ResolvedOrder['image']>(db, 'images', request.image, ['id', 'slug', 'name', 'distribution', 'min_disk_size']),
  ]);
  if (!region) {
    throw cloudError('CLOUD_ERR_UNKNOWN_REGION', `region ${quote(request.region)} does not exist; use one of ${await slugs(db, 'regions')}`);
  }
  if (!region.available) {
    throw cloudError('CLOUD_ERR_REGION_UNAVAILABLE', `region ${quote(region.slug)} is not accepting new droplets; choose another region`);
  }
  if (!size) throw cloudError('CLOUD_ERR_UNKNOWN_SIZE', `size ${quote(request.size)} does not exist; use one of ${await slugs(db, 'sizes')}`);
  if (!image) throw cloudError('CLOUD_ERR_UNKNOWN_IMAGE', `image ${quote(request.image)} does not exist; use one of ${await slugs(db, 'images')}`);
  if (size.disk < image.min_disk_size) {
    throw cloudError(
      'CLOUD_ERR_SIZE_TOO_SMALL',
      `image ${image.slug} needs at least ${image.min_disk_size} GB of disk and size ${size.slug} has ${size.disk} GB; choose a larger size`,
    );
  }
  let sshKeyIds: number[] = [];
  if (request.ssh_keys.length > 0) {
    const owned = (await db('ssh_keys').where('customer_id', customerId).whereIn('id', request.ssh_keys).pluck('id')) as number[];
    // Another customer's key answers exactly like a key that does not exist.
    const missing = request.ssh_keys.filter((id) => !owned.includes(id));
    if (missing.length > 0) {
      throw cloudError('CLOUD_ERR_UNKNOWN_SSH_KEY', `ssh_keys: no SSH key with id ${missing.join(', ')} in your account; list yours and use their ids`);
    }
    sshKeyIds = request.ssh_keys;
  }
  const { available: _available, ...regionRow } = region;
  return { region: regionRow, size, image, sshKeyIds };
}

async function bySlug<T extends { slug: string }>(db: Knex, table: string, slug: string, columns: string[]): Promise<T | undefined> {
  const row = (await db(table).where('slug', slug).first(columns)) as T | undefined;
  // The collation ignores case and trailing spaces; a slug is an exact name.
  return row && row.slug === slug ? row : undefined;
}

async function slugs(db: Knex, table: string): Promise<string> {
  const all = (await db(table).orderBy('id').limit(50).pluck('slug')) as string[];
  return all.join(', ');
}
