-- What the operator's UI and API filter by, served from indexes on a store of millions.
-- Writes pay for these; reads (most of the traffic) do not: each index but the userName one is
-- partial, and the userName one replaces the case-sensitive index of 0001 entry for entry.
DROP INDEX exchanges_by_user;
CREATE INDEX exchanges_by_user ON exchanges (LOWER(user_name), id) WHERE user_name IS NOT NULL;
CREATE INDEX exchanges_by_lifecycle ON exchanges (lifecycle, id)
    WHERE lifecycle IS NOT NULL AND lifecycle <> 'lookup';
CREATE INDEX exchanges_by_write_method ON exchanges (method, id)
    WHERE method IN ('POST', 'PUT', 'PATCH', 'DELETE');
CREATE INDEX exchanges_with_findings ON exchanges (id) WHERE findings <> '[]';
