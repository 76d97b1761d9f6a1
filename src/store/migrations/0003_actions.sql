-- mailwave state, schema 3.
-- Operator actions on mailboxes (hold, release, retry, skip, reschedule, approve): an append-only
-- audit that is also the queue the run works from. The command that asks records the action; the
-- run applies it (on the service too) and records when, and how it went. Nothing but those two
-- columns ever changes, and nothing is deleted.
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    kind TEXT NOT NULL,
    by TEXT NOT NULL,
    reason TEXT,
    -- reschedule: the wave it goes to
    target_wave INTEGER REFERENCES waves(id),
    force INTEGER NOT NULL DEFAULT 0,
    applied_at INTEGER,
    outcome TEXT
);
CREATE INDEX actions_pending ON actions (id) WHERE applied_at IS NULL;
CREATE INDEX actions_by_mailbox ON actions (mailbox_id);
CREATE TRIGGER actions_append_only_delete BEFORE DELETE ON actions
BEGIN SELECT RAISE(ABORT, 'actions are an audit: append-only'); END;
CREATE TRIGGER actions_keep_what_was_asked BEFORE UPDATE OF at, mailbox_id, kind, by, reason, target_wave, force ON actions
BEGIN SELECT RAISE(ABORT, 'actions are an audit: what was asked never changes'); END;
CREATE TRIGGER actions_applied_once BEFORE UPDATE OF applied_at, outcome ON actions
WHEN OLD.applied_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'actions are an audit: an applied action stays as it was applied'); END;
