-- The last representation of each resource the application returned, per route: the state
-- that stateful normalisation rules (N8, N20, R13) start from. Shared by every proxy
-- instance on the same store. Never holds a password (the application never returns one,
-- and the proxy strips it before writing).
CREATE TABLE resource_snapshots (
    route         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    body          TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,             -- epoch milliseconds
    PRIMARY KEY (route, resource_type, resource_id)
);
