-- Schema 3: the audit log's Merkle tree, its complete subtrees keyed as
-- redb's audit_tree (level byte, index u64 BE). The tree over entries
-- written before it is built by exhibitd as it starts.
CREATE TABLE audit_tree (k bytea PRIMARY KEY, v bytea NOT NULL);
