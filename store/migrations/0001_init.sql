-- 0001_init: jobs, dedupe keys, statuses, key-value records, media.
--
-- Times are UTC unix milliseconds. next_at 0 means "due at any time";
-- expires 9223372036854775807 means "never expires". The queries in
-- sql.go are portable (SQLite and PostgreSQL); this file is the SQLite
-- dialect of the schema (a PostgreSQL twin would use BIGINT GENERATED
-- ALWAYS AS IDENTITY and BYTEA).

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- the lane sequence; never reused
    queue       TEXT    NOT NULL,
    channel_id  TEXT    NOT NULL,
    contact_id  TEXT    NOT NULL,
    mid         TEXT    NOT NULL DEFAULT '',
    payload     BLOB    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT    NOT NULL DEFAULT '',
    last_error  TEXT    NOT NULL DEFAULT ''
);

-- Lane heads: the lowest active id per (queue, channel_id, contact_id).
CREATE INDEX jobs_lane ON jobs (queue, channel_id, contact_id, id)
    WHERE state IN ('pending', 'leased');
-- Complete / Retry / Kill by token.
CREATE INDEX jobs_token ON jobs (lease_token) WHERE state = 'leased';
-- JobByMID.
CREATE INDEX jobs_mid ON jobs (queue, mid, id);
-- Sweep and Count of done jobs; listing, Count and Revive of dead jobs.
-- (Partial, so that the planner has no index on state alone that it would
-- prefer to jobs_lane for the lease query.)
CREATE INDEX jobs_done ON jobs (updated_at) WHERE state = 'done';
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';

CREATE TABLE dedupe_keys (
    name    TEXT    PRIMARY KEY,
    value   BLOB    NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX dedupe_keys_expires ON dedupe_keys (expires);

CREATE TABLE status (
    mid   TEXT    PRIMARY KEY,
    value TEXT    NOT NULL,
    rank  INTEGER NOT NULL
);

CREATE TABLE kv (
    ns    TEXT NOT NULL,
    name  TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (ns, name)
);

CREATE TABLE media (
    id           TEXT    PRIMARY KEY,
    file_name    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    path         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires      INTEGER NOT NULL
);
CREATE INDEX media_expires ON media (expires);
