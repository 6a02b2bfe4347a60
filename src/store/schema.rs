//! Diesel's view of the tables in `migrations/`.

diesel::table! {
    accounts (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (key_hash) {
        key_hash -> Bytea,
        account_id -> Uuid,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    customers (id) {
        id -> Uuid,
        account_id -> Uuid,
        external_customer_id -> Nullable<Text>,
        created_at -> Timestamptz,
        status -> Text,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    institutions (id) {
        id -> Uuid,
        service_provider -> Text,
        provider_institution_id -> Text,
        name -> Text,
        created_at -> Timestamptz,
        owner_account_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    connections (id) {
        id -> Uuid,
        account_id -> Uuid,
        customer_id -> Uuid,
        institution_id -> Uuid,
        service_provider -> Text,
        provider_connection_id -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        products -> Array<Text>,
        credentials -> Nullable<Bytea>,
        webhook_url -> Nullable<Text>,
        successfully_aggregated_at -> Nullable<Timestamptz>,
        consecutive_failures -> Int4,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        transactions_cursor -> Nullable<Text>,
        historical_aggregated_at -> Nullable<Timestamptz>,
        next_refresh_at -> Nullable<Timestamptz>,
        status_as_of -> Nullable<Timestamptz>,
        flow_expires_at -> Nullable<Timestamptz>,
        active_duplicate_connection_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    consumed_refresh_tokens (token_sha256) {
        token_sha256 -> Bytea,
        connection_id -> Uuid,
        consumed_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        service_provider -> Text,
        body_sha256 -> Text,
        body -> Bytea,
        signed_at -> Timestamptz,
        received_at -> Timestamptz,
        webhook_type -> Nullable<Text>,
        webhook_code -> Nullable<Text>,
        provider_connection_id -> Nullable<Text>,
        processed_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_sources (service_provider, source) {
        service_provider -> Text,
        source -> Text,
        body_sha256 -> Text,
        delivery_id -> Uuid,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    financial_accounts (id) {
        id -> Uuid,
        account_id -> Uuid,
        connection_id -> Uuid,
        customer_id -> Uuid,
        provider_account_id -> Text,
        name -> Text,
        official_name -> Nullable<Text>,
        mask -> Nullable<Text>,
        #[sql_name = "type"]
        type_ -> Nullable<Text>,
        subtype -> Nullable<Text>,
        status -> Text,
        current_balance -> Nullable<Numeric>,
        available_balance -> Nullable<Numeric>,
        currency -> Nullable<Text>,
        balances_updated_at -> Nullable<Timestamptz>,
        historical_aggregation_succeeded -> Bool,
        created_at -> Timestamptz,
        identifiers -> Nullable<Bytea>,
        owners -> Nullable<Jsonb>,
    }
}

diesel::table! {
    transactions (id) {
        id -> Uuid,
        account_id -> Uuid,
        connection_id -> Uuid,
        financial_account_id -> Uuid,
        customer_id -> Uuid,
        provider_transaction_id -> Text,
        amount -> Numeric,
        currency -> Nullable<Text>,
        description -> Text,
        status -> Text,
        transaction_date -> Date,
        posted_date -> Nullable<Date>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    events (transaction_id, sequence) {
        sequence -> Int8,
        transaction_id -> Int8,
        event_id -> Uuid,
        account_id -> Uuid,
        event_type -> Text,
        customer_id -> Nullable<Uuid>,
        external_customer_id -> Nullable<Text>,
        connection_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        version -> Text,
        payload -> Json,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        account_id -> Nullable<Uuid>,
        connection_id -> Nullable<Uuid>,
        payload -> Jsonb,
        dedupe_key -> Nullable<Text>,
        run_at -> Timestamptz,
        attempts -> Int4,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        rerun -> Bool,
        last_error -> Nullable<Text>,
        dead_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        trigger -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_profiles (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        url -> Text,
        event_types -> Array<Text>,
        event_version -> Text,
        status -> Text,
        disabled_reason -> Nullable<Text>,
        secret -> Bytea,
        previous_secret -> Nullable<Bytea>,
        previous_secret_until -> Nullable<Timestamptz>,
        start_transaction -> Int8,
        start_sequence -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outbound_deliveries (id) {
        id -> Uuid,
        account_id -> Uuid,
        profile_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        body -> Nullable<Json>,
        status -> Text,
        attempts -> Jsonb,
        next_attempt_at -> Nullable<Timestamptz>,
        first_attempted_at -> Nullable<Timestamptz>,
        round_attempts -> Int4,
        last_error -> Nullable<Text>,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(consumed_refresh_tokens -> connections (connection_id));
diesel::joinable!(connections -> customers (customer_id));
diesel::joinable!(connections -> institutions (institution_id));
diesel::joinable!(financial_accounts -> connections (connection_id));
diesel::joinable!(transactions -> financial_accounts (financial_account_id));
diesel::joinable!(outbound_deliveries -> webhook_profiles (profile_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    consumed_refresh_tokens,
    api_keys,
    customers,
    institutions,
    connections,
    financial_accounts,
    events,
    jobs,
    transactions,
    webhook_deliveries,
    webhook_sources,
    webhook_profiles,
    outbound_deliveries,
);
