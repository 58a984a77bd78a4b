-- How long an exchange's requests waited in their route's pacing queue before the proxy
-- sent them to the application (`[route.target] max_requests_per_second`, `max_in_flight`),
-- in milliseconds. NULL: no request of the exchange went through a paced route. Nullable,
-- no default: a running older version keeps writing its rows.
ALTER TABLE exchanges ADD COLUMN paced_ms BIGINT;
