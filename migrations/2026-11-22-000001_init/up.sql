-- Tenants and their API keys. Only a SHA-256 of each key is kept.
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

-- A tenant's customers; the external id is the tenant's own and unique within the tenant.
CREATE TABLE customers (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    external_customer_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, external_customer_id)
);

-- Institutions as providers name them; shared by all tenants.
CREATE TABLE institutions (
    id uuid PRIMARY KEY,
    service_provider text NOT NULL,
    provider_institution_id text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service_provider, provider_institution_id)
);

CREATE TABLE connections (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    customer_id uuid NOT NULL REFERENCES customers (id),
    institution_id uuid NOT NULL REFERENCES institutions (id),
    service_provider text NOT NULL,
    -- The provider's id for the connection (Plaid item_id); unset while a connect flow runs.
    provider_connection_id text,
    status text NOT NULL,
    status_reason text,
    products text[] NOT NULL DEFAULT '{}',
    -- Provider credentials, sealed with XChaCha20-Poly1305 under LINKSTATE_ENCRYPTION_KEY.
    credentials bytea,
    -- The URL the provider was told to send this connection's webhooks to.
    webhook_url text,
    successfully_aggregated_at timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- Work on one connection is serialized by this lease, never by a lock held across a provider call.
    lease_owner text,
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, service_provider, provider_connection_id)
);
CREATE INDEX connections_account_created ON connections (account_id, created_at DESC, id DESC);
CREATE INDEX connections_customer ON connections (customer_id);
CREATE INDEX connections_provider_id ON connections (service_provider, provider_connection_id);

CREATE TABLE financial_accounts (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    connection_id uuid NOT NULL REFERENCES connections (id),
    customer_id uuid NOT NULL REFERENCES customers (id),
    provider_account_id text NOT NULL,
    name text NOT NULL,
    official_name text,
    mask text,
    type text,
    subtype text,
    status text NOT NULL DEFAULT 'ACTIVE',
    current_balance numeric,
    available_balance numeric,
    currency text,
    balances_updated_at timestamptz,
    historical_aggregation_succeeded boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, provider_account_id)
);
CREATE INDEX financial_accounts_customer ON financial_accounts (customer_id);

-- The event log. Readers order by (transaction_id, sequence) and only read below the oldest
-- running transaction, so a late commit can never land behind a cursor already handed out.
CREATE TABLE events (
    sequence bigserial NOT NULL,
    transaction_id bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_id uuid NOT NULL UNIQUE,
    account_id uuid NOT NULL,
    event_type text NOT NULL,
    customer_id uuid,
    external_customer_id text,
    connection_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    version text NOT NULL,
    -- json, not jsonb: the payload keeps the key order of Meld's documents.
    payload json NOT NULL,
    PRIMARY KEY (transaction_id, sequence)
);
CREATE INDEX events_account_position ON events (account_id, transaction_id, sequence);
CREATE INDEX events_created ON events (created_at);

-- Background work. A live job (not dead) is unique per dedupe key; a request that arrives while
-- the job runs sets `rerun`, so the job runs once more instead of twice at once.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    account_id uuid,
    connection_id uuid,
    payload jsonb NOT NULL,
    dedupe_key text,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    locked_by text,
    locked_until timestamptz,
    rerun boolean NOT NULL DEFAULT false,
    last_error text,
    dead_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX jobs_live_dedupe ON jobs (dedupe_key) WHERE dead_at IS NULL;
CREATE INDEX jobs_ready ON jobs (run_at) WHERE dead_at IS NULL;
