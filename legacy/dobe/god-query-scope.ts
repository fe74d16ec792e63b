/**
 * Which rows both god queries answer (god-query.ts, god-query-2016.ts): one
 * event of this host in the asked status, joined to its host, region and
 * droplet context, and never an event whose droplet sits on another host.
 * One text, so the two variants cannot drift apart in what they deliver.
 *
 * Parameters, in order: server_id, status, server_id, server_id (godQueryParams).
 */
export const GOD_QUERY_FROM = `FROM events e
JOIN servers s          ON s.id = e.server_id
JOIN regions sr         ON sr.id = s.region_id
LEFT JOIN droplets d    ON d.id = e.droplet_id
LEFT JOIN customers c   ON c.id = d.customer_id
LEFT JOIN sizes sz      ON sz.id = d.size_id
LEFT JOIN images i      ON i.id = d.image_id
LEFT JOIN kernels k     ON k.id = d.kernel_id
LEFT JOIN regions dr    ON dr.id = d.region_id
WHERE e.server_id = ?
  AND e.status = ?
  AND s.id = ?
  AND (d.id IS NULL OR d.server_id IS NULL OR d.server_id = ?)`;
