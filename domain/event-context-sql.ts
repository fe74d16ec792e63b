/**
 * The per-event context both the god query and the Event Router's context
 * query select (aliases e = events, d = droplets, s = servers). The index
 * hints matter: left to itself the optimizer counts a host's running events
 * through (status, type, server_id), scanning every running event of every
 * host once per row.
 */
export const EVENT_CONTEXT_SUBQUERIES = `  (SELECT GROUP_CONCAT(sk.fingerprint ORDER BY sk.id SEPARATOR ',')
     FROM droplet_ssh_keys dsk
     JOIN ssh_keys sk ON sk.id = dsk.ssh_key_id AND sk.customer_id = d.customer_id
    WHERE dsk.droplet_id = d.id)                                         AS ssh_fingerprints,
  (SELECT GROUP_CONCAT(df.feature ORDER BY df.feature SEPARATOR ',')
     FROM droplet_features df
    WHERE df.droplet_id = d.id)                                          AS features,
  (SELECT GROUP_CONCAT(ip.address ORDER BY ip.id SEPARATOR ',')
     FROM ip_addresses ip
    WHERE ip.droplet_id = d.id)                                          AS ip_addresses,
  (SELECT COUNT(*)
     FROM events busy FORCE INDEX (events_server_id_status_index)
    WHERE busy.server_id = s.id AND busy.status = 'running')             AS server_running_events,
  (SELECT COUNT(*)
     FROM droplets neighbours FORCE INDEX (droplets_customer_id_server_id_index)
    WHERE neighbours.server_id = s.id
      AND neighbours.customer_id = d.customer_id
      AND neighbours.status <> 'archived')                               AS customer_droplets_on_server`;
