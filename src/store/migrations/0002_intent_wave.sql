-- mailwave state, schema 2.
-- A create intent records the wave it was made for, so that a request adopted after a crash is moved
-- into the mailbox's current wave only when it was made for another one.
ALTER TABLE intents ADD COLUMN wave_id INTEGER;
