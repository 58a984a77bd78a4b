-- An exchange the proxy made on its own account for another: the read-back GET after a
-- write, one request of a bulk fanned out. Not a foreign key: a child may be committed in
-- the same batch as, or before, its parent's first record (async mode writes a parent whole).
ALTER TABLE exchanges ADD COLUMN parent_id TEXT;
CREATE INDEX exchanges_by_parent ON exchanges (parent_id) WHERE parent_id IS NOT NULL;
