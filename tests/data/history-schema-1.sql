-- A safe-pip history database at schema version 1 (the schema before the `serials` table,
-- threat T21), made by the schema-1 store code (git 9a74de6:src/safe_pip/store/db.py) with one
-- record and one audit entry, dumped with sqlite3's iterdump(). The header fields are not in a
-- dump: tests/adversarial/test_t21_stale_replayed_page.py sets application_id = 0x53504950,
-- user_version = 1 and journal_mode = WAL before running this script.
BEGIN TRANSACTION;
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    action  TEXT NOT NULL,
    project TEXT,
    count   INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    detail  TEXT NOT NULL                -- JSON: e.g. the records a forget removed
);
INSERT INTO "audit" VALUES(1,'2026-11-28T00:56:15.145900+00:00','forget','beta',0,'test','[]');
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "meta" VALUES('schema_version','1');
INSERT INTO "meta" VALUES('created_at','2026-11-28T00:56:15.143374+00:00');
CREATE TABLE records (
    id           INTEGER PRIMARY KEY,
    project      TEXT NOT NULL,
    version      TEXT NOT NULL,
    filename     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    identity_key TEXT NOT NULL,          -- canonical JSON of the identity, '' when unsigned
    identity     TEXT,                   -- the same JSON, NULL when unsigned
    seen_at      TEXT NOT NULL,          -- ISO 8601, UTC
    idx          TEXT,                   -- the index URL
    source       TEXT NOT NULL CHECK (source IN ('local', 'index')),
    UNIQUE (project, version, filename, sha256, identity_key)
);
INSERT INTO "records" VALUES(1,'alpha','1.0','alpha-1.0-py3-none-any.whl','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','{"kind":"GitHub","repository":"acme/alpha","workflow":"release.yml"}','{"kind":"GitHub","repository":"acme/alpha","workflow":"release.yml"}','2026-01-02T00:00:00+00:00','http://127.0.0.1:1/simple/','local');
CREATE INDEX records_project ON records (project);
COMMIT;
