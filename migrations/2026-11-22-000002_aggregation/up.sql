-- Aggregation state per connection.
ALTER TABLE connections
    -- Plaid's /transactions/sync cursor, committed only with the data it produced.
    ADD COLUMN transactions_cursor text,
    -- Set when BANK_LINKING_HISTORICAL_TRANSACTIONS_AGGREGATED was sent: it is sent once.
    ADD COLUMN historical_aggregated_at timestamptz,
    -- When the background refresh takes this connection next.
    ADD COLUMN next_refresh_at timestamptz;
CREATE INDEX connections_next_refresh ON connections (next_refresh_at) WHERE next_refresh_at IS NOT NULL;

ALTER TABLE financial_accounts
    -- Account and routing numbers, sealed like credentials (the account's id is the associated data).
    ADD COLUMN identifiers bytea,
    ADD COLUMN owners jsonb;

CREATE TABLE transactions (
    id uuid PRIMARY KEY,
    -- The tenant, connection and customer are the financial account's, copied so that reads
    -- can filter on them directly; only the account is a foreign key, since it implies the rest
    -- (three more foreign-key checks per row would halve the write rate of a large sync).
    account_id uuid NOT NULL,
    connection_id uuid NOT NULL,
    financial_account_id uuid NOT NULL REFERENCES financial_accounts (id),
    customer_id uuid NOT NULL,
    provider_transaction_id text NOT NULL,
    -- Exact decimal; Plaid's sign convention (positive: money out of the account).
    amount numeric NOT NULL,
    currency text,
    description text NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'POSTED')),
    transaction_date date NOT NULL,
    posted_date date,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, provider_transaction_id)
);
CREATE INDEX transactions_account_date ON transactions (financial_account_id, transaction_date DESC, id DESC);
CREATE INDEX transactions_connection_date ON transactions (connection_id, transaction_date DESC, id DESC);
CREATE INDEX transactions_customer_date ON transactions (customer_id, transaction_date DESC, id DESC);
