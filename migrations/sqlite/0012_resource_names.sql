-- What each resource is called, by id, as the exchanges showed it (creates, reads, lists,
-- replies): a request by id — a deactivation among them — belongs to the person named here.
-- `exchanges list --user` and erasure find a person's records through it. One row per
-- resource; a name once seen stays until it is replaced or the resource is erased.
CREATE TABLE resource_names (
    route         TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    user_name     TEXT,
    external_id   TEXT,
    display_name  TEXT,
    learned_at    BIGINT NOT NULL,
    PRIMARY KEY (route, resource_type, resource_id)
);
