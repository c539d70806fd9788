-- Schema 2: unit mailboxes (unit id -> postcard UnitRecord), as redb's
-- "units" table.
CREATE TABLE units (k bytea PRIMARY KEY, v bytea NOT NULL);
