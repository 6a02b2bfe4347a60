-- The job queue empties and refills all day. When a vacuum finds its last pages empty it would
-- give them back to the file system, and to do that it takes an ACCESS EXCLUSIVE lock on the
-- table: every claim, enqueue and completion then waits for it (measured: 60 ms in the middle
-- of 200 webhooks a second). The pages are needed again a moment later anyway.
ALTER TABLE jobs SET (vacuum_truncate = false);
