-- Replay reads the writes made to one resource on one route: to skip an exchange superseded
-- by a later successful one, and one already replayed.
CREATE INDEX exchanges_by_resource_id ON exchanges (route, resource_type, resource_id, id)
    WHERE resource_id IS NOT NULL;
