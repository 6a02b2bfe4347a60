//! ImportConnections for Plaid, through the real gRPC listener, against the simulator.

mod common;

use common::{assert_nothing_written, events_until, import_request, plaid_item};
use linkstate::proto::{self, import_result};
use linkstate_sim::ErrorRule;
use linkstate_testing::{TestApp, authed};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adds_the_connection_its_accounts_and_the_two_events() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let mut connections = app.connections().await;

    let response = connections
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("customer-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(response.request_id.len(), 32);
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("import failed: {:?}", response.results[0]);
    };
    assert_eq!(connection.account_id, account_id.to_string());
    assert_eq!(connection.external_customer_id, "customer-1");
    assert_eq!(connection.institution_name, "First Platypus Bank");
    assert_eq!(connection.status, proto::connection::Status::Active as i32);
    let details = connection.service_provider_details.as_ref().unwrap();
    assert_eq!(details.service_provider_connection_id, item.item_id);

    let mut fetched = connections
        .get_connection(authed(
            &key,
            proto::GetConnectionRequest {
                connection_id: connection.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // The aggregation may have finished in between; everything else is as imported.
    fetched.successfully_aggregated_at = connection.successfully_aggregated_at;
    assert_eq!(&fetched, connection);

    let accounts = app
        .financial_data()
        .await
        .list_financial_accounts(authed(
            &key,
            proto::ListFinancialAccountsRequest {
                connection_id: connection.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .financial_accounts;
    assert_eq!(accounts.len(), 5);
    let checking = accounts
        .iter()
        .find(|a| a.name == "Plaid Checking")
        .unwrap();
    let listed = app.sim.accounts(&item.item_id);
    let sim_checking = listed.iter().find(|a| a.name == "Plaid Checking").unwrap();
    assert_eq!(
        Some(checking.truncated_account_number.as_str()),
        sim_checking.mask.as_deref()
    );
    let balances = checking.balances.as_ref().unwrap();
    assert_eq!(balances.currency, "USD");
    assert!(
        balances
            .current_amount
            .as_deref()
            .unwrap()
            .parse::<f64>()
            .is_ok()
    );

    let events = events_until(&app, &key, |events| events.len() >= 3).await;
    let types: Vec<i32> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        vec![
            proto::event::Type::BankLinkingAccountsUpdating as i32,
            proto::event::Type::BankLinkingAccountsUpdated as i32,
            proto::event::Type::BankLinkingTransactionsAggregated as i32,
        ]
    );
    let updating = events[0].payload.as_ref().unwrap();
    assert_eq!(
        updating.request_id.as_deref(),
        Some(response.request_id.as_str())
    );
    assert_eq!(updating.financial_accounts.len(), 5);
    assert!(
        updating
            .financial_accounts
            .iter()
            .all(|a| a.new_account == Some(true))
    );
    let updated = events[1].payload.as_ref().unwrap();
    assert!(updated.successfully_aggregated_at.is_some());
    assert!(updated.financial_accounts.iter().all(|a| {
        a.products
            .contains(&(proto::product::Value::Balances as i32))
    }));

    // Seed step 3: Plaid now sends the item's webhooks to us.
    let expected = format!("http://{}/webhooks/plaid", app.app.http_addr);
    assert_eq!(app.sim.item_webhook(&item.item_id), Some(expected));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_same_item_again_returns_the_same_connection() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109509");
    let mut connections = app.connections().await;
    let import = || import_request(vec![plaid_item("customer-1", item.access_token.expose())]);

    let first = connections
        .import_connections(authed(&key, import()))
        .await
        .unwrap()
        .into_inner();
    let second = connections
        .import_connections(authed(&key, import()))
        .await
        .unwrap()
        .into_inner();
    let id = |r: &proto::ImportConnectionsResponse| match &r.results[0].result {
        Some(import_result::Result::Connection(c)) => c.id.clone(),
        other => panic!("import failed: {other:?}"),
    };
    assert_eq!(id(&first), id(&second));
    assert_eq!(app.count("connections").await, 1);
    assert_eq!(app.count("customers").await, 1);
    assert_eq!(app.count("financial_accounts").await, 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaid_401_or_403_fails_only_its_item() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let good = app.sim.create_item("ins_109508");
    let unauthorized = app.sim.create_item("ins_109510");
    let forbidden = app.sim.create_item("ins_109511");
    for (item, http_status, code) in [
        (&unauthorized, 401, "INVALID_API_KEYS"),
        (&forbidden, 403, "ACCESS_NOT_GRANTED"),
    ] {
        app.sim.inject_error(ErrorRule {
            access_token: Some(item.access_token.expose().into()),
            ..linkstate_testing::plaid::rule("/accounts/get", http_status, "INVALID_INPUT", code)
        });
    }
    let response = common::import_items(
        &app,
        &key,
        vec![
            plaid_item("c-401", unauthorized.access_token.expose()),
            plaid_item("c-good", good.access_token.expose()),
            plaid_item("c-403", forbidden.access_token.expose()),
        ],
    )
    .await;
    let error_of = |i: usize| match &response.results[i].result {
        Some(import_result::Result::Error(error)) => (error.code.clone(), error.message.clone()),
        other => panic!("item {i} was not refused: {other:?}"),
    };
    let (code, message) = error_of(0);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(message.contains("INVALID_API_KEYS"), "{message}");
    let (code, message) = error_of(2);
    assert_eq!(code, "PERMISSION_DENIED");
    assert!(message.contains("ACCESS_NOT_GRANTED"), "{message}");
    assert!(matches!(
        response.results[1].result,
        Some(import_result::Result::Connection(_))
    ));
    // Only the good item was written.
    assert_eq!(app.count("connections").await, 1);
    assert_eq!(app.count("customers").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaid_error_fails_only_its_item() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let good = app.sim.create_item("ins_109508");
    let bad = app.sim.create_item("ins_109510");
    let other = app.sim.create_item("ins_109511");
    app.sim.inject_error(ErrorRule {
        endpoint: "/accounts/get".into(),
        access_token: Some(bad.access_token.expose().into()),
        http_status: 400,
        error_type: "INVALID_INPUT".into(),
        error_code: "INVALID_ACCESS_TOKEN".into(),
        error_message: "provided access token is in an invalid format".into(),
        times: None,
    });

    let response = common::import_items(
        &app,
        &key,
        vec![
            plaid_item("c-good", good.access_token.expose()),
            plaid_item("c-bad", bad.access_token.expose()),
            plaid_item("c-other", other.access_token.expose()),
        ],
    )
    .await;

    assert!(matches!(
        response.results[0].result,
        Some(import_result::Result::Connection(_))
    ));
    assert!(matches!(
        response.results[2].result,
        Some(import_result::Result::Connection(_))
    ));
    let Some(import_result::Result::Error(error)) = &response.results[1].result else {
        panic!("the bad item succeeded");
    };
    assert_eq!(error.code, "UNAUTHENTICATED");
    assert!(
        error.message.contains("INVALID_ACCESS_TOKEN"),
        "{}",
        error.message
    );
    let details = &error.service_provider_details.as_ref().unwrap().fields;
    let field = |name: &str| match details.get(name).and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::StringValue(s)) => s,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(field("error_code"), "INVALID_ACCESS_TOKEN");
    assert_eq!(field("serviceProvider"), "PLAID");
    // Nothing of the failed item was written.
    assert_eq!(app.count("connections").await, 2);
    assert_eq!(app.count("customers").await, 2);
    assert_eq!(app.count("financial_accounts").await, 10);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_whole_and_write_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let token = item.access_token.expose();
    let mut connections = app.connections().await;
    let mut mx = plaid_item("c", token);
    mx.service_provider = proto::service_provider::Value::Mx as i32;
    let cases: Vec<(Vec<proto::ImportConnection>, &str)> = vec![
        (vec![], "connections must not be empty"),
        (
            (0..101)
                .map(|i| plaid_item(&format!("c{i}"), token))
                .collect(),
            "at most 100 connections per request, got 101",
        ),
        (
            vec![plaid_item("c", token), mx],
            "connections[1]: importing only works for PLAID and AKOYA, not MX",
        ),
        (
            vec![plaid_item("c", "")],
            "connections[0]: accessToken is required for PLAID",
        ),
        (
            vec![proto::ImportConnection {
                service_provider: proto::service_provider::Value::Akoya as i32,
                refresh_token: "r".into(),
                ..Default::default()
            }],
            "connections[0]: refreshToken and providerId are required for AKOYA",
        ),
    ];
    for (items, message) in cases {
        let status = connections
            .import_connections(authed(&key, import_request(items)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{message}");
        assert_eq!(status.message(), message);
    }
    assert_nothing_written(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaid_without_api_keys_is_a_failed_precondition() {
    let app = TestApp::start_with(|config| config.plaid.client_id = None).await;
    let (_, key) = app.account("acme").await;
    let status = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("c", "access-x")]),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "Plaid is not configured: set PLAID_CLIENT_ID and PLAID_SECRET"
    );
    assert_nothing_written(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sealed_at_rest() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("c", item.access_token.expose())]),
        ))
        .await
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Sealed {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        credentials: Vec<u8>,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    let sealed = diesel::sql_query("SELECT credentials FROM connections")
        .get_result::<Sealed>(&mut conn)
        .await
        .unwrap()
        .credentials;
    let token = item.access_token.expose().as_bytes();
    assert!(!sealed.windows(token.len()).any(|w| w == token));
    assert!(sealed.len() > token.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_checks_every_item_at_the_provider_and_writes_nothing() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let good = app.sim.create_item("ins_109508");
    let revoked = app.sim.create_item("ins_109510");
    app.sim.inject_error(ErrorRule {
        endpoint: "/item/get".into(),
        access_token: Some(revoked.access_token.expose().into()),
        http_status: 400,
        error_type: "INVALID_INPUT".into(),
        error_code: "INVALID_ACCESS_TOKEN".into(),
        error_message: "provided access token is in an invalid format".into(),
        times: None,
    });
    let consent = app.sim.create_akoya_consent("mikomo");
    let akoya = proto::ImportConnection {
        service_provider: proto::service_provider::Value::Akoya as i32,
        external_customer_id: "c-akoya".into(),
        refresh_token: consent.refresh_token.expose().into(),
        provider_id: "mikomo".into(),
        ..Default::default()
    };
    let webhook_updates = app.sim.calls("/item/webhook/update");

    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: vec![
                    plaid_item("c-good", good.access_token.expose()),
                    plaid_item("c-revoked", revoked.access_token.expose()),
                    akoya,
                ],
                validate_only: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();

    let Some(import_result::Result::Connection(checked)) = &response.results[0].result else {
        panic!("the good item failed: {:?}", response.results[0]);
    };
    assert_eq!(
        checked,
        &proto::Connection {
            service_provider: proto::service_provider::Value::Plaid as i32,
            external_customer_id: "c-good".into(),
            institution_name: "First Platypus Bank".into(),
            service_provider_details: Some(proto::ServiceProviderDetails {
                service_provider: proto::service_provider::Value::Plaid as i32,
                service_provider_connection_id: good.item_id.clone(),
            }),
            ..Default::default()
        },
        "only the four fields the contract names"
    );
    let Some(import_result::Result::Error(error)) = &response.results[1].result else {
        panic!("the revoked token passed");
    };
    assert_eq!(error.code, "UNAUTHENTICATED");
    assert!(
        error.message.contains("INVALID_ACCESS_TOKEN"),
        "{}",
        error.message
    );
    let Some(import_result::Result::Connection(akoya)) = &response.results[2].result else {
        panic!("the Akoya item failed: {:?}", response.results[2]);
    };
    assert_eq!(
        akoya.service_provider,
        proto::service_provider::Value::Akoya as i32
    );
    assert_eq!(akoya.institution_name, "mikomo");
    assert_eq!(
        app.sim.akoya_refreshes(&consent.consent_id),
        0,
        "an Akoya token is not rotated"
    );
    assert!(response.request_id.is_empty());

    assert_nothing_written(&app).await;
    assert_eq!(app.sim.calls("/item/webhook/update"), webhook_updates);
    assert_eq!(
        app.sim.item_webhook(&good.item_id),
        None,
        "nothing changed at Plaid"
    );
}
