-- The resources' summary: of the successful writes pruned, the latest to each key of each
-- resource (an attribute path, a member: `scimtrail_scim::write_keys`), the exchange that
-- made it, when, and where it stands in the IdP's order (`stands_at`: a replay stands where
-- its original does, an operation of a bulk request where the request does). A prune keeps
-- a write here in the transaction that deletes it; replay decides from it whether an older
-- failure is superseded. A removal (a member removed, a resource deleted) is kept only while
-- an older failure it supersedes remains.
CREATE TABLE resource_writes (
    route         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    write_key     TEXT NOT NULL,
    stands_at     TEXT NOT NULL,
    exchange_id   TEXT NOT NULL,
    written_at    BIGINT NOT NULL,             -- epoch milliseconds
    written       TEXT,                        -- JSON {op, value}, redacted as the record is
    removal       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route, resource_type, resource_id, write_key)
);
CREATE INDEX resource_writes_removals ON resource_writes (stands_at) WHERE removal = 1;
