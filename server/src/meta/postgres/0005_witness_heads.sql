-- Schema 5: the latest tree head each witness cosigned (issue 23), so
-- that every node of a deployment hands the same cosigned heads to
-- clients, as redb's table of the same name: the witness's Ed25519
-- public key (32 bytes) -> postcard CosignedHead (the signed head and
-- the witness's cosignature).
CREATE TABLE witness_heads (k bytea PRIMARY KEY, v bytea NOT NULL);
