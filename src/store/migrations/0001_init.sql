-- mailwave state, schema 1.
-- Times are Unix milliseconds, UTC. States are small integers (see store::lifecycle::State) so that the
-- event log for two million mailboxes stays small; the `states` table names them for ad-hoc SQL.

CREATE TABLE states (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO states (code, name) VALUES
    (0, 'planned'), (1, 'submitted'), (2, 'syncing'), (3, 'synced'), (4, 'completing'),
    (5, 'completed'), (6, 'completed_with_warning'), (7, 'failed'), (8, 'held'), (9, 'skipped');

-- Inventory facts, one row per mailbox, as imported.
CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    item_count INTEGER NOT NULL DEFAULT 0,
    organisation TEXT,
    source_database TEXT,
    priority INTEGER,
    pilot INTEGER NOT NULL DEFAULT 0,
    exclude INTEGER NOT NULL DEFAULT 0,
    has_archive INTEGER NOT NULL DEFAULT 0,
    group_id INTEGER NOT NULL DEFAULT 0,
    service_account INTEGER NOT NULL DEFAULT 0
);

-- Delegate permissions between mailboxes (undirected, low id first).
CREATE TABLE delegations (
    a INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    b INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;

CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    mailboxes INTEGER NOT NULL,
    delegations INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    summary TEXT NOT NULL
);

-- Plans loaded into the store; exactly one is current.
CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    dir TEXT NOT NULL,
    loaded_at INTEGER NOT NULL,
    timezone TEXT NOT NULL,
    current INTEGER NOT NULL DEFAULT 0
);

-- Waves by their id (also the BatchName on the service). A wave keeps its row when a later plan drops
-- it, so the history of mailboxes that moved in it stays readable.
CREATE TABLE waves (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    seq INTEGER NOT NULL,
    local_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    pilot INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    prestage_start INTEGER NOT NULL,
    window_start_local TEXT NOT NULL,
    window_end_local TEXT NOT NULL
);

-- Where each planned mailbox stands.
CREATE TABLE mailbox_state (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    wave_id INTEGER NOT NULL REFERENCES waves(id),
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL REFERENCES states(code),
    attempts INTEGER NOT NULL DEFAULT 0,
    failure_class TEXT,
    last_error TEXT,
    request_id TEXT,
    status_detail TEXT,
    percent INTEGER,
    submitted_at INTEGER,
    synced_at INTEGER,
    completed_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX mailbox_state_by_wave ON mailbox_state (wave_id, state);

-- Append-only: every transition, with its cause and the API call's correlation id (16 bytes).
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL,
    from_state INTEGER,
    to_state INTEGER NOT NULL,
    cause TEXT NOT NULL,
    detail TEXT,
    correlation BLOB,
    run_id INTEGER
);
CREATE INDEX events_by_mailbox ON events (mailbox_id);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- A call about to create or change something on the service, and what came of it.
CREATE TABLE intents (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    operation TEXT NOT NULL,
    correlation BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    outcome TEXT,
    run_id INTEGER
);
CREATE INDEX intents_open ON intents (mailbox_id) WHERE resolved_at IS NULL;

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    command TEXT NOT NULL,
    outcome TEXT,
    summary TEXT
);
