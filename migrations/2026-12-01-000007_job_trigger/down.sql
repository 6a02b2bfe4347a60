DROP INDEX jobs_live_trigger;
ALTER TABLE jobs DROP COLUMN trigger;
