-- mailwave state, schema 7.
-- A correction or a re-confirmation answers the notice that told the user the date they now hold
-- (answers = that notice's id; 0 for "before" and "after" notices). Each notice that told a date is
-- answered at most once, so a user corrected after a hold, re-confirmed after the release and held
-- again is corrected again, and never twice for one change. The table is rebuilt because SQLite
-- cannot widen a UNIQUE constraint in place.
CREATE TABLE notices_v7 (
    id INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    kind TEXT NOT NULL,
    told_start INTEGER NOT NULL,
    wave_id INTEGER,
    status TEXT NOT NULL,
    sender TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at INTEGER NOT NULL,
    next_at INTEGER,
    done_at INTEGER,
    answers INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mailbox_id, kind, told_start, answers)
);
INSERT INTO notices_v7 (id, mailbox_id, kind, told_start, wave_id, status, sender, attempts, reason,
                        created_at, next_at, done_at)
    SELECT id, mailbox_id, kind, told_start, wave_id, status, sender, attempts, reason, created_at,
           next_at, done_at FROM notices;
DROP TABLE notices;
ALTER TABLE notices_v7 RENAME TO notices;
CREATE INDEX notices_by_sender ON notices (sender, done_at);
CREATE INDEX notices_open ON notices (status) WHERE status IN ('sending', 'retry');

-- An action taken with --no-notice: its users are not told of the change it makes (kept in the audit).
ALTER TABLE actions ADD COLUMN silent INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER actions_keep_what_was_asked;
CREATE TRIGGER actions_keep_what_was_asked BEFORE UPDATE OF at, mailbox_id, kind, by, reason, target_wave, force, split, silent ON actions
BEGIN SELECT RAISE(ABORT, 'actions are an audit: what was asked never changes'); END;

-- Mailboxes a "needs a person" alert has named, so that a restart never names them again; a row
-- goes when its mailbox no longer needs a person, so a new need is alerted anew.
CREATE TABLE alerted (
    mailbox_id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);

-- The users found without a licence, which "needs a person" reads on every `status`.
CREATE INDEX licences_wanting ON licences (mailbox_id) WHERE status IN ('missing', 'no_user');
