-- mailwave state, schema 4.
-- The figures of one Get-MoveRequestStatistics per finished move (run.collect_statistics), which
-- explain its speed: `mailwave analyze`, the reports and the forecast read them. One row per mailbox,
-- the latest read (a move that failed and later completed keeps the completed figures). Durations are
-- seconds; sizes bytes; times Unix milliseconds. A column is NULL where the service left it out.
CREATE TABLE move_stats (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    collected_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    total_size INTEGER,
    archive_size INTEGER,
    bytes_transferred INTEGER,
    items_transferred INTEGER,
    overall REAL,
    queued REAL,
    in_progress REAL,
    idle REAL,
    suspended REAL,
    failed REAL,
    transient_failure REAL,
    content_indexing REAL,
    high_availability REAL,
    mailbox_locked REAL,
    read_throttle REAL,
    write_throttle REAL,
    read_cpu REAL,
    write_cpu REAL,
    read_unknown REAL,
    write_unknown REAL,
    queued_at INTEGER,
    started_at INTEGER,
    seeded_at INTEGER,
    final_sync_at INTEGER,
    completed_at INTEGER,
    complete_after INTEGER,
    dcs TEXT,
    source_server TEXT,
    source_database TEXT,
    target_database TEXT
);

-- Forecasts (`mailwave forecast`), newest last: status, watch and the reports show the latest.
CREATE TABLE forecasts (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
