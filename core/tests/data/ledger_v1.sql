-- The ledger schema as ledgerlink 0.1 (schema version 1) created it, with a few
-- rows; test_ledger.py opens it with the current version to prove the migration.
CREATE TABLE documents (id INTEGER NOT NULL PRIMARY KEY, pipeline VARCHAR NOT NULL, source_ref VARCHAR NOT NULL,
  number VARCHAR, state VARCHAR NOT NULL, reason VARCHAR, target_id VARCHAR, target_number VARCHAR,
  content_hash VARCHAR, payload VARCHAR, customer_source_id VARCHAR, attempts INTEGER NOT NULL,
  payment_state VARCHAR, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, pushed_at TIMESTAMP,
  CONSTRAINT uq_documents_pipeline_ref UNIQUE (pipeline, source_ref));
CREATE TABLE customer_links (id INTEGER NOT NULL PRIMARY KEY, target_connection VARCHAR NOT NULL,
  source_connection VARCHAR NOT NULL, source_customer_id VARCHAR NOT NULL, state VARCHAR NOT NULL, key VARCHAR,
  target_contact_id VARCHAR, target_customer_number VARCHAR, matched_by VARCHAR, manual BOOLEAN NOT NULL,
  writeback VARCHAR, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
  CONSTRAINT uq_customer_links UNIQUE (target_connection, source_connection, source_customer_id));
CREATE TABLE cursors (pipeline VARCHAR NOT NULL PRIMARY KEY, value VARCHAR, updated_at TIMESTAMP NOT NULL);
CREATE TABLE runs (id INTEGER NOT NULL PRIMARY KEY, pipeline VARCHAR NOT NULL, command VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, outcome VARCHAR, counts VARCHAR NOT NULL);
CREATE TABLE audit (id INTEGER NOT NULL PRIMARY KEY, at TIMESTAMP NOT NULL, pipeline VARCHAR NOT NULL,
  target_connection VARCHAR NOT NULL, source_ref VARCHAR, action VARCHAR NOT NULL, target_ref VARCHAR,
  payload_hash VARCHAR, outcome VARCHAR NOT NULL);
CREATE TABLE schema_version (id INTEGER NOT NULL PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1, 1);
INSERT INTO documents VALUES (1, 'shop-to-books', 'order-7', 'RE-7', 'pushed', NULL, '555', 'RE-7', 'abc', NULL,
  'c1', 1, NULL, '2026-01-05 10:00:00', '2026-01-05 10:00:01', '2026-01-05 10:00:01');
INSERT INTO cursors VALUES ('shop-to-books', '2026-01-05T10:00:00', '2026-01-05 10:00:01');
INSERT INTO audit VALUES (1, '2026-01-05 10:00:01', 'shop-to-books', 'books', 'order-7', 'push', '555', 'abc', 'ok');
