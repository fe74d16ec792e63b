import { GOD_QUERY_FROM } from './god-query-scope.ts';

/**
 * The god query as the 2016 write-ups describe it: one statement that grew a
 * join or a subquery per feature until it passed 150 lines over 18 tables,
 * with no index hints and no LIMIT. It answers the same rows as the
 * optimized GOD_QUERY (god-query.ts) plus the context nobody had removed
 * (volumes, backups, snapshots, tags, the host's queue, the customer's other
 * work, earlier executions). The demo runs this one by default in its legacy
 * stage; `--god-query optimized` runs the other, so a user sees what the
 * hints and the LIMIT buy.
 *
 * Tables: events, servers, regions, droplets, customers, sizes, images,
 * kernels, ssh_keys, droplet_ssh_keys, droplet_features, ip_addresses,
 * event_executions, volumes, backups, snapshots, tags, droplet_tags.
 *
 * Parameters: the same as GOD_QUERY (godQueryParams).
 */
export const GOD_QUERY_2016 = `
SELECT
  e.id                      AS event_id,
  e.type                    AS event_type,
  e.status                  AS event_status,
  e.args                    AS event_args,
  e.message                 AS event_message,
  e.created_at              AS event_created_at,
  e.available_at            AS event_available_at,
  e.started_at              AS event_started_at,
  e.droplet_id              AS droplet_id,
  d.name                    AS droplet_name,
  d.status                  AS droplet_status,
  d.locked                  AS droplet_locked,
  d.created_at              AS droplet_created_at,
  d.updated_at              AS droplet_updated_at,
  c.id                      AS customer_id,
  c.email                   AS customer_email,
  c.name                    AS customer_name,
  c.status                  AS customer_status,
  c.droplet_limit           AS customer_droplet_limit,
  sz.slug                   AS size_slug,
  sz.memory                 AS size_memory,
  sz.vcpus                  AS size_vcpus,
  sz.disk                   AS size_disk,
  sz.price_monthly          AS size_price_monthly,
  i.slug                    AS image_slug,
  i.name                    AS image_name,
  i.distribution            AS image_distribution,
  i.min_disk_size           AS image_min_disk_size,
  k.name                    AS kernel_name,
  k.version                 AS kernel_version,
  dr.slug                   AS droplet_region_slug,
  dr.name                   AS droplet_region_name,
  dr.available              AS droplet_region_available,
  s.id                      AS server_id,
  s.name                    AS server_name,
  s.cpus                    AS server_cpus,
  s.memory                  AS server_memory,
  s.disk                    AS server_disk,
  s.memfree                 AS server_memfree,
  s.diskfree_actual         AS server_diskfree_actual,
  s.vmcount                 AS server_vmcount,
  s.error_count             AS server_error_count,
  s.state                   AS server_state,
  s.updated_at              AS server_updated_at,
  sr.slug                   AS server_region_slug,
  sr.name                   AS server_region_name,
  (SELECT GROUP_CONCAT(sk.fingerprint ORDER BY sk.id SEPARATOR ',')
     FROM droplet_ssh_keys dsk
     JOIN ssh_keys sk ON sk.id = dsk.ssh_key_id
    WHERE dsk.droplet_id = d.id
      AND sk.customer_id = d.customer_id)                     AS ssh_fingerprints,
  (SELECT GROUP_CONCAT(sk.public_key ORDER BY sk.id SEPARATOR '\\n')
     FROM droplet_ssh_keys dsk
     JOIN ssh_keys sk ON sk.id = dsk.ssh_key_id
    WHERE dsk.droplet_id = d.id)                              AS ssh_public_keys,
  (SELECT GROUP_CONCAT(df.feature ORDER BY df.feature SEPARATOR ',')
     FROM droplet_features df
    WHERE df.droplet_id = d.id)                               AS features,
  EXISTS (SELECT 1 FROM droplet_features f1
           WHERE f1.droplet_id = d.id AND f1.feature = 'backups')            AS feature_backups,
  EXISTS (SELECT 1 FROM droplet_features f2
           WHERE f2.droplet_id = d.id AND f2.feature = 'ipv6')               AS feature_ipv6,
  EXISTS (SELECT 1 FROM droplet_features f3
           WHERE f3.droplet_id = d.id AND f3.feature = 'private_networking') AS feature_private_networking,
  EXISTS (SELECT 1 FROM droplet_features f4
           WHERE f4.droplet_id = d.id AND f4.feature = 'monitoring')         AS feature_monitoring,
  (SELECT GROUP_CONCAT(ip.address ORDER BY ip.id SEPARATOR ',')
     FROM ip_addresses ip
    WHERE ip.droplet_id = d.id)                               AS ip_addresses,
  (SELECT GROUP_CONCAT(ip.type ORDER BY ip.id SEPARATOR ',')
     FROM ip_addresses ip
    WHERE ip.droplet_id = d.id)                               AS ip_address_types,
  (SELECT COUNT(*)
     FROM ip_addresses free_ip
    WHERE free_ip.region_id = s.region_id
      AND free_ip.droplet_id IS NULL)                         AS region_free_ips,
  (SELECT GROUP_CONCAT(v.name ORDER BY v.id SEPARATOR ',')
     FROM volumes v
    WHERE v.droplet_id = d.id)                                AS volume_names,
  (SELECT COALESCE(SUM(v.size_gb), 0)
     FROM volumes v
    WHERE v.droplet_id = d.id)                                AS volume_gb,
  (SELECT MAX(b.created_at)
     FROM backups b
    WHERE b.droplet_id = d.id
      AND b.status = 'done')                                  AS last_backup_at,
  (SELECT COUNT(*)
     FROM backups b
    WHERE b.droplet_id = d.id
      AND b.status = 'pending')                               AS backups_pending,
  (SELECT COUNT(*)
     FROM snapshots sn
    WHERE sn.droplet_id = d.id)                               AS snapshot_count,
  (SELECT GROUP_CONCAT(t.name ORDER BY t.name SEPARATOR ',')
     FROM droplet_tags dt
     JOIN tags t ON t.id = dt.tag_id
    WHERE dt.droplet_id = d.id)                               AS tags,
  (SELECT COUNT(*)
     FROM events busy
    WHERE busy.server_id = s.id
      AND busy.status = 'running')                            AS server_running_events,
  (SELECT COUNT(*)
     FROM events queued
    WHERE queued.server_id = s.id
      AND queued.status = 'pending')                          AS server_pending_events,
  (SELECT COUNT(*)
     FROM events failed
    WHERE failed.server_id = s.id
      AND failed.status = 'error')                            AS server_failed_events,
  (SELECT COUNT(*)
     FROM events mine
    WHERE mine.droplet_id = d.id
      AND mine.status IN ('pending', 'running')
      AND mine.id <> e.id)                                    AS droplet_events_in_flight,
  (SELECT COUNT(*)
     FROM events theirs
    WHERE theirs.customer_id = c.id
      AND theirs.status IN ('pending', 'running'))           AS customer_events_in_flight,
  (SELECT COUNT(*)
     FROM droplets neighbours
    WHERE neighbours.server_id = s.id
      AND neighbours.customer_id = d.customer_id
      AND neighbours.status <> 'archived')                    AS customer_droplets_on_server,
  (SELECT COUNT(*)
     FROM droplets tenants
    WHERE tenants.server_id = s.id
      AND tenants.status = 'active')                          AS server_active_droplets,
  (SELECT COALESCE(SUM(tsz.memory), 0)
     FROM droplets tenants
     JOIN sizes tsz ON tsz.id = tenants.size_id
    WHERE tenants.server_id = s.id
      AND tenants.status <> 'archived')                       AS server_committed_memory,
  (SELECT COUNT(*)
     FROM event_executions x
    WHERE x.event_id = e.id)                                  AS previous_executions,
  (SELECT MAX(x.finished_at)
     FROM event_executions x
    WHERE x.server_id = s.id)                                 AS server_last_execution_at
${GOD_QUERY_FROM}
ORDER BY e.created_at, e.id`;

/** The tables GOD_QUERY_2016 reads (the write-ups' "18 tables"). */
export const GOD_QUERY_2016_TABLES = [
  'events', 'servers', 'regions', 'droplets', 'customers', 'sizes', 'images', 'kernels', 'ssh_keys',
  'droplet_ssh_keys', 'droplet_features', 'ip_addresses', 'event_executions', 'volumes', 'backups',
  'snapshots', 'tags', 'droplet_tags',
] as const;
