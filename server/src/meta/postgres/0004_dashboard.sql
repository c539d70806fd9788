-- Schema 4: the admin dashboard's sessions and one-time login links, so
-- that every node of a deployment knows them (and a restart keeps them),
-- as redb's tables of the same names: BLAKE3 of the cookie or link code
-- -> postcard DashboardLogin (actor, expiry). Never the secret itself.
CREATE TABLE dashboard_sessions (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE dashboard_links (k bytea PRIMARY KEY, v bytea NOT NULL);
