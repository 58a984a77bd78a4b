-- What the IdP intends each user and group to be (`scimtrail_intent`): of every authenticated
-- IdP write, whether the application took it or not, the latest write to each key of each
-- resource, `order_key` its place in the IdP's order (`<stands_at>/<operation>`). Folded
-- from the record by one instance at a time (the `intent` lease); never pruned with the
-- exchanges, so that retention never loses intent; erased with a person's records.
CREATE TABLE intended_writes (
    route         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    write_key     TEXT NOT NULL,
    order_key     TEXT NOT NULL,
    exchange_id   TEXT NOT NULL,
    written       TEXT NOT NULL,
    PRIMARY KEY (route, resource_type, resource_id, write_key)
);

-- Where folding stands is `store_settings.intent_folded_through`: every write with a smaller
-- id is folded (a drained spool moves it back; the last seconds are folded again).

-- Reconciliation runs: the application's state against the intent, for one route.
CREATE TABLE reconciliations (
    id             TEXT PRIMARY KEY NOT NULL,  -- a UUIDv7
    route          TEXT NOT NULL,
    resource_types TEXT NOT NULL,              -- JSON array
    started_at     BIGINT NOT NULL,            -- epoch milliseconds
    finished_at    BIGINT,
    counts         TEXT NOT NULL DEFAULT '{}', -- JSON: drifts by kind
    error          TEXT,
    actor          TEXT NOT NULL,
    instance       TEXT NOT NULL
);
CREATE INDEX reconciliations_by_route ON reconciliations (route, id);

-- Each drift a run found, in report order.
CREATE TABLE reconciliation_drifts (
    reconciliation_id TEXT NOT NULL,
    n                 INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    name              TEXT,
    part              TEXT,
    intended          TEXT,
    actual            TEXT,
    established_by    TEXT,
    PRIMARY KEY (reconciliation_id, n)
);

-- The application's resources a run has seen, while it runs: what the intent holds and the
-- application was not seen to have is missing, found by a query rather than kept in memory.
CREATE TABLE reconciliation_seen (
    reconciliation_id TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    PRIMARY KEY (reconciliation_id, resource_type, resource_id)
);
