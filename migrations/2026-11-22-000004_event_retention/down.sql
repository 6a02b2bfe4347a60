DROP TABLE event_log_horizon;
