DROP TABLE transactions;
ALTER TABLE financial_accounts DROP COLUMN identifiers, DROP COLUMN owners;
ALTER TABLE connections DROP COLUMN transactions_cursor, DROP COLUMN historical_aggregated_at,
    DROP COLUMN next_refresh_at;
