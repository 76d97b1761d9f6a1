-- mailwave state, schema 5.
-- Notices to users ([notices]): one row per notice that is due, written before the call that sends
-- it (status 'sending') and updated after it, so that a crash never sends one twice. kind is
-- 'before:<offset>' (e.g. 'before:7d'), 'after' or 'correction'; told_start is the window start the
-- notice tells of (Unix ms; 0 for none: 'after', or a correction for a held or skipped mailbox).
-- status: 'sending' (the call may be on the wire), 'sent', 'retry' (not sent; due again at next_at),
-- 'failed' (refused for good), 'dropped' (no longer useful: the window opened first, or a later
-- notice superseded it), 'uncertain' (a crash or a cut-off call left it unknown: never resent).
CREATE TABLE notices (
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
    UNIQUE (mailbox_id, kind, told_start)
);
CREATE INDEX notices_by_sender ON notices (sender, done_at);
CREATE INDEX notices_open ON notices (status) WHERE status IN ('sending', 'retry');

-- The html report mailed to [notify] report_to after each window closed: one row per wave, written
-- before the call (status 'sending') and updated after ('sent', 'retry', 'failed', 'uncertain').
CREATE TABLE reports_mailed (
    wave_id INTEGER PRIMARY KEY REFERENCES waves(id),
    status TEXT NOT NULL,
    sender TEXT,
    reason TEXT,
    at INTEGER NOT NULL
);

-- Licence checks ([licences]): the latest finding for each mailbox's user before its cut-over:
-- 'licensed' (held an Exchange Online plan), 'assigned' (mailwave assigned the SKU), 'missing'
-- (none, and none assigned: with the reason), 'no_user' (no cloud user), 'failed' (to try again).
CREATE TABLE licences (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    status TEXT NOT NULL,
    sku TEXT,
    reason TEXT,
    at INTEGER NOT NULL
);
