-- What is not the IdP's intent, though it writes to the application: the repairs a
-- reconciliation run sent (`reconcile_of`: the run's id) and synthetic traffic (`synthetic`:
-- what made it, `verify` or `probe`). Neither is folded into the intent; synthetic exchanges
-- raise no alert and are left out of listings unless asked for. Nullable, no default: a
-- running older version keeps writing its rows.
ALTER TABLE exchanges ADD COLUMN reconcile_of TEXT;
ALTER TABLE exchanges ADD COLUMN synthetic TEXT;

-- What a run's repair did (JSON: writes planned, sent, succeeded, failed, skipped; whether it
-- was a dry run). NULL: the run repaired nothing.
ALTER TABLE reconciliations ADD COLUMN repair TEXT;

-- The application's id of a resource the IdP knows by another: a repair re-created a
-- resource the application had lost, and the application gave it a new id. Reconcile then
-- compares the IdP's intent for `resource_id` (and its group memberships) with the
-- application's `app_id`. Erased with the resource's intent.
CREATE TABLE intent_aliases (
    route         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    app_id        TEXT NOT NULL,
    exchange_id   TEXT NOT NULL,  -- the repair that created it
    PRIMARY KEY (route, resource_type, resource_id)
);

-- The writes a run's repair planned (a dry run) or sent, one per resource, in order.
CREATE TABLE reconciliation_repairs (
    reconciliation_id TEXT NOT NULL,
    n                 INTEGER NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,   -- the IdP's id (the intent's)
    name              TEXT,
    kinds             TEXT NOT NULL,   -- JSON array: the drifts it repairs
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,   -- below the route's prefix
    body              TEXT NOT NULL,
    notes             TEXT NOT NULL,   -- JSON array
    outcome           TEXT NOT NULL,   -- planned, ok, failed, skipped
    status            BIGINT,          -- the application's answer
    exchange_id       TEXT,            -- the exchange that sent it
    reason            TEXT,
    PRIMARY KEY (reconciliation_id, n)
);
