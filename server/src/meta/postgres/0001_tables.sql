-- Schema 1: one table per redb table, keyed and encoded exactly as redb
-- schema 4 (postcard records, big-endian integers in keys), so every
-- listing is one ordered range scan (bytea orders as redb orders bytes).
CREATE TABLE users (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE certs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE codes (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE transfers (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE manifests (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE transfer_chunks (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE fetched (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE inbox (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE outbox (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE approvals (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE orgs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE cases (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE receipts (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE deadlines (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE chunk_refs (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE alerts (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE alert_keys (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE pending_deliveries (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE renewals (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE meta (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE audit (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE audit_subject (k bytea PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE audit_checkpoints (k bytea PRIMARY KEY, v bytea NOT NULL);
