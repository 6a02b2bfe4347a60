-- Why an aggregation runs, as a column: the scheduler counts its own live jobs by it.
ALTER TABLE jobs ADD COLUMN trigger text;
UPDATE jobs SET trigger = payload->>'trigger' WHERE kind = 'aggregate';
CREATE INDEX jobs_live_trigger ON jobs (kind, trigger) WHERE dead_at IS NULL;
