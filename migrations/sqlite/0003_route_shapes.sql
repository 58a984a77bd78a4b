-- The request shapes each route has seen (method, endpoint, filter or PATCH paths without
-- their values): a shape not seen before on a route is a shape_drift finding, e.g. an IdP
-- that switches from userName lookups to externalId lookups. Shared by every instance.
CREATE TABLE route_shapes (
    route      TEXT NOT NULL,
    shape      TEXT NOT NULL,
    first_seen INTEGER NOT NULL,              -- epoch milliseconds
    PRIMARY KEY (route, shape)
);
