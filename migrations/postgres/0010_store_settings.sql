-- What every instance sharing the store must agree on, one value per name: the id of the key
-- credentials' fingerprints are made with (never the key: whoever reads the store must not
-- be able to test guesses). The first instance writes it; one whose value differs refuses
-- to start.
CREATE TABLE store_settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
