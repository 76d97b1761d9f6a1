-- mailwave state, schema 6.
-- An action asked with --split acts on part of a delegation group knowingly: it keeps the members
-- of the group it was split from, as the audit shows them. Like the rest of what was asked, it never
-- changes.
ALTER TABLE actions ADD COLUMN split TEXT;
DROP TRIGGER actions_keep_what_was_asked;
CREATE TRIGGER actions_keep_what_was_asked BEFORE UPDATE OF at, mailbox_id, kind, by, reason, target_wave, force, split ON actions
BEGIN SELECT RAISE(ABORT, 'actions are an audit: what was asked never changes'); END;
