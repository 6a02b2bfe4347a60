-- How far the event log has been pruned: events up to this position are gone, so a reader that
-- asks to resume before it is told OUT_OF_RANGE instead of silently missing events.
CREATE TABLE event_log_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_through_transaction bigint NOT NULL,
    pruned_through_sequence bigint NOT NULL
);
INSERT INTO event_log_horizon (pruned_through_transaction, pruned_through_sequence) VALUES (0, 0);
