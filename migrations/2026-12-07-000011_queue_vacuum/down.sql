ALTER TABLE jobs RESET (vacuum_truncate);
