-- One replay run at a time over a store, whichever process runs it (the CLI, or the admin
-- API of any instance): two runs at once could send the same exchange twice. A lease, not a
-- lock: a run that dies holding it frees it when it expires.
CREATE TABLE replay_lease (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL               -- epoch milliseconds
);
