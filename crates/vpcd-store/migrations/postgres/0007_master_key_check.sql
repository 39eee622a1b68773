-- Secrets at rest (issue 11): API SecretKeys and pre-shared keys are stored
-- sealed under a master key kept outside the database (src/master_key.rs).
-- This row holds the sealing of a fixed text under that key, so a vpcd
-- started with another key refuses to start instead of failing on every
-- secret. SQL cannot seal: the store fills the row, and seals the clear
-- values an older vpcd wrote, in one transaction at its first start on this
-- schema (of several vpcds starting at once, the first to insert the row
-- does it; the others wait for its commit and then check their key).
CREATE TABLE master_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    key_check  TEXT    NOT NULL
);
