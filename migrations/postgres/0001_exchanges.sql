-- One row per exchange: the request as received, as forwarded, and the response.
-- Ids are UUIDv7 text: ordering by id is ordering by time, so listings page by id alone.
-- JSON columns hold text exactly as recorded (after redaction).
CREATE TABLE exchanges (
    id                TEXT PRIMARY KEY NOT NULL,
    received_at       BIGINT NOT NULL,           -- epoch milliseconds
    duration_ms       BIGINT,
    route             TEXT,
    idp               TEXT,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    query             TEXT,
    resource_type     TEXT,
    resource_id       TEXT,
    user_name         TEXT,
    operation         TEXT NOT NULL,
    lifecycle         TEXT,
    request_headers   TEXT NOT NULL,             -- JSON array of [name, value]
    request_body      TEXT,
    forwarded_headers TEXT,                      -- JSON array of [name, value]
    forwarded_body    TEXT,                      -- NULL when identical to request_body
    changes           TEXT NOT NULL DEFAULT '[]',
    upstream_status   BIGINT,
    status            BIGINT,
    response_headers  TEXT,
    response_body     TEXT,
    outcome           TEXT NOT NULL,             -- in_flight until completed
    findings          TEXT NOT NULL DEFAULT '[]',
    bulk_operations   TEXT,
    error             TEXT,
    instance          TEXT,                      -- the proxy instance that recorded it
    replay_of         TEXT REFERENCES exchanges (id)
);

CREATE INDEX exchanges_by_outcome ON exchanges (outcome, id);
CREATE INDEX exchanges_by_idp ON exchanges (idp, id);
CREATE INDEX exchanges_by_route ON exchanges (route, id);
CREATE INDEX exchanges_by_resource ON exchanges (resource_type, id);
CREATE INDEX exchanges_by_user ON exchanges (user_name, id);
CREATE INDEX exchanges_in_flight ON exchanges (instance) WHERE outcome = 'in_flight';
CREATE INDEX exchanges_by_replay_of ON exchanges (replay_of) WHERE replay_of IS NOT NULL;
