-- Who sent each exchange (the peer, or behind a trusted proxy the client it names), and how
-- many identical refusals (same client, route and status within a second) one record stands
-- for. Columns added with defaults only: a running older version keeps writing its rows.
ALTER TABLE exchanges ADD COLUMN client TEXT;
ALTER TABLE exchanges ADD COLUMN repeat_count BIGINT NOT NULL DEFAULT 1;
