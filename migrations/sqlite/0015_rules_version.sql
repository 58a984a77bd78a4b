-- Which rules applied to each exchange: the content hash of its route's IdP profile as
-- resolved when the exchange began (`rules_version`, 16 hex digits), so that an operator can
-- tell which rules applied and replay can say when the rules differ from the original's.
-- Nullable: exchanges recorded before it, or before a route was known, have none; a running
-- older version keeps writing its rows.
ALTER TABLE exchanges ADD COLUMN rules_version TEXT;
