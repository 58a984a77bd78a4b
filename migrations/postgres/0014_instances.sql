-- The instances serving a store, each with a heartbeat: a survivor marks a dead instance's
-- exchanges left in flight `interrupted` once its heartbeat is older than the bound, and a
-- process that would take the name of a live instance refuses to start. Times are epoch
-- milliseconds of the writing process's clock (instances' clocks agree within seconds: NTP).
CREATE TABLE instances (
    name         TEXT PRIMARY KEY NOT NULL,  -- SCIMTRAIL_INSTANCE, stable across restarts
    run_id       TEXT NOT NULL,              -- one per process start
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT,                     -- a clean stop, drained
    reaped_at    BIGINT,                     -- its in-flight exchanges marked interrupted
    reaped_by    TEXT                        -- by which instance, or `cli:<user>`
);
