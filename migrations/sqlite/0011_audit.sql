-- Operators' actions: replay runs, erasures, exports, prunes, configuration reloads. One row
-- per action, the whole entry as JSON in `entry` (who, from where, what, counts); `at_ms`
-- and `action` beside it for listing. Kept at least a year, whatever the retention.
CREATE TABLE audit (
    id     TEXT PRIMARY KEY NOT NULL,
    at_ms  BIGINT NOT NULL,
    action TEXT NOT NULL,
    entry  TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at_ms);
