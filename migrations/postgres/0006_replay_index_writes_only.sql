-- Replay reads only writes: the index of 0004 need not be kept up to date by every read,
-- which are most of the traffic (a lookup per provisioning step). Measured: about 9% of
-- durable throughput at one connection.
DROP INDEX exchanges_by_resource_id;
CREATE INDEX exchanges_by_resource_id ON exchanges (route, resource_type, resource_id, id)
    WHERE resource_id IS NOT NULL AND method IN ('POST', 'PUT', 'PATCH', 'DELETE');
