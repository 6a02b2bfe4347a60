//! What an outside run found (issue 9): each defect has its test here, through the real
//! listeners, against the simulator and a real database.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use linkstate::proto::{self, import_result};
use linkstate_sim::ErrorRule;
use linkstate_testing::{SIM_CLIENT_ID, SIM_SECRET, TestApp, authed};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

fn rule(endpoint: &str, http_status: u16, code: &str, times: Option<u32>) -> ErrorRule {
    ErrorRule {
        endpoint: endpoint.into(),
        access_token: None,
        http_status,
        error_type: "API_ERROR".into(),
        error_code: code.into(),
        error_message: "simulated".into(),
        times,
    }
}

// 1. The import answers only once the provider sends the item's webhooks to linkstate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_points_the_items_webhook_before_it_answers() {
    // No worker runs: whatever happened, the import itself did it.
    let app = TestApp::start_with(|config| config.worker.concurrency = 0).await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    let ours = format!("http://{}/webhooks/plaid", app.app.http_addr);
    assert_eq!(app.sim.item_webhook(&item.item_id), Some(ours.clone()));
    assert_eq!(app.sim.calls("/item/webhook/update"), 1);
    assert_eq!(
        app.count(&format!(
            "connections WHERE id = '{}' AND webhook_url = '{ours}'",
            connection.id
        ))
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_whose_webhook_plaid_will_not_point_fails_unavailable_and_writes_nothing() {
    let app = TestApp::start_with(|config| config.worker.concurrency = 0).await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.inject_error(rule(
        "/item/webhook/update",
        500,
        "INTERNAL_SERVER_ERROR",
        None,
    ));
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("customer-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(import_result::Result::Error(error)) = &response.results[0].result else {
        panic!("imported: {:?}", response.results[0]);
    };
    assert_eq!(error.code, "UNAVAILABLE");
    assert!(
        error
            .message
            .starts_with("Plaid could not be told to send this item's webhooks to linkstate"),
        "{}",
        error.message
    );
    // The first call and three retries.
    assert_eq!(app.sim.calls("/item/webhook/update"), 4);
    assert_nothing_written(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_comes_before_its_items_import_committed_is_not_lost() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let ack = json!({"webhook_type": "ITEM", "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
        "item_id": item.item_id, "new_webhook_url": "http://elsewhere.invalid/hook"});
    assert_eq!(deliver(&app, &ack).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    import(&app, &key, &item).await;
    wait_processed(&app, 2).await;
    assert_eq!(
        app.count("webhook_deliveries WHERE outcome = 'unknown_connection'")
            .await,
        0,
        "looked at again once the connection was there"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_items_webhook_changed_elsewhere_is_pointed_back_by_the_next_aggregation() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    let updated =
        |events: &[proto::Event]| count(events, proto::event::Type::BankLinkingAccountsUpdated);
    events_until(&app, &key, |events| updated(events) >= 1).await;
    // The caller's old integration points the item at itself again.
    let elsewhere = "https://old-integration.example.com/plaid";
    let response = reqwest::Client::new()
        .post(format!("http://{}/item/webhook/update", app.sim_addr))
        .json(&json!({"client_id": SIM_CLIENT_ID, "secret": SIM_SECRET,
                      "access_token": item.access_token.expose(), "webhook": elsewhere}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.sim.item_webhook(&item.item_id).as_deref(),
        Some(elsewhere)
    );
    let updates = app.sim.calls("/item/webhook/update");

    refresh(&app, &key, &connection.id).await.unwrap();
    events_until(&app, &key, |events| updated(events) >= 2).await;
    let ours = format!("http://{}/webhooks/plaid", app.app.http_addr);
    assert_eq!(app.sim.item_webhook(&item.item_id), Some(ours));
    assert_eq!(app.sim.calls("/item/webhook/update"), updates + 1);
    app.stop().await;
}

// 2. A store error is a 500 with a fixed message, never a 503 with the database's text.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_recording_a_webhook_is_a_500_without_database_text() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    sql(
        &app,
        "ALTER TABLE webhook_deliveries ADD CONSTRAINT refuse_all CHECK (webhook_code = 'none')",
    )
    .await;
    let body = json!({"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "item-1"});
    let (status, answer) = deliver(&app, &body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer, json!({"error": "internal error"}));

    let bytes = serde_json::to_vec(&body).unwrap();
    let relayed = app.channel().await;
    let error = proto::webhook_service_client::WebhookServiceClient::new(relayed)
        .record_webhook(authed(
            &key,
            proto::RecordWebhookRequest {
                service_provider: proto::service_provider::Value::Plaid as i32,
                headers: [(
                    "Plaid-Verification".to_string(),
                    app.sim.sign_webhook(&bytes),
                )]
                .into(),
                body: bytes,
            },
        ))
        .await
        .unwrap_err();
    assert_status(&error, Code::Internal, "internal error");
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_with_a_nul_byte_is_a_400_and_recorded_nowhere() {
    let app = TestApp::start().await;
    let body = br#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "a\u0000b"}"#;
    let (status, answer) = post(&app, body, Some(&app.sim.sign_webhook(body))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "body is not a Plaid webhook: item_id must not contain NUL bytes"
    );
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("webhook_sources").await, 0);
    app.stop().await;
}

// 3. Waiting for a busy connection is not an attempt.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_rounds_do_not_count_as_attempts() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    wait_until(|| async { app.count("jobs").await == 0 }).await;
    // Another replica holds the connection for a long time.
    sql(
        &app,
        "UPDATE connections SET lease_owner = 'another-replica', \
         lease_until = now() + interval '10 minutes'",
    )
    .await;
    refresh(&app, &key, &connection.id).await.unwrap();
    // Each busy round gives the job back for a second: three rounds or more.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        app.count("jobs WHERE last_error = 'busy' AND attempts = 0 AND dead_at IS NULL")
            .await,
        1,
        "the job waited without spending attempts"
    );
    sql(
        &app,
        "UPDATE connections SET lease_owner = NULL, lease_until = NULL",
    )
    .await;
    wait_until(|| async { app.count("jobs").await == 0 }).await;
    app.stop().await;
}

// 4. Answers that name something.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_during_a_running_aggregation_answers_that_aggregations_request_id() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.set_latency(Duration::from_millis(300));
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("customer-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("import failed");
    };
    // The import's aggregation makes four calls of 300 ms: it is queued or running now.
    let answered = refresh(&app, &key, &connection.id).await.unwrap();
    assert_eq!(answered, response.request_id);
    app.sim.set_latency(Duration::ZERO);
    let events = events_until(&app, &key, |events| {
        count(events, proto::event::Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    let updated = events
        .iter()
        .find(|e| e.event_type == proto::event::Type::BankLinkingAccountsUpdated as i32)
        .unwrap();
    let payload = updated.payload.as_ref().unwrap();
    assert_eq!(payload.request_id.as_deref(), Some(answered.as_str()));
    app.stop().await;
}

// 5. Unknown webhook key ids cost Plaid one call, not one per request.

/// A JWT that names `kid`, signed by nobody.
fn jwt_naming(kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": kid}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(json!({"iat": 0, "request_body_sha256": "x"}).to_string());
    let signature = URL_SAFE_NO_PAD.encode([7u8; 64]);
    format!("{header}.{claims}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_is_fetched_once_and_a_failed_fetch_is_cached() {
    let app = TestApp::start().await;
    let body = br#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "i"}"#;
    let jwt = jwt_naming("made-up-kid-1");
    let together = futures::future::join_all((0..10).map(|_| post(&app, body, Some(&jwt)))).await;
    for (status, _) in together {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..10 {
        assert_eq!(
            post(&app, body, Some(&jwt)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.sim.calls("/webhook_verification_key/get"), 1);

    app.sim.inject_error(rule(
        "/webhook_verification_key/get",
        500,
        "INTERNAL_SERVER_ERROR",
        None,
    ));
    let jwt = jwt_naming("made-up-kid-2");
    for _ in 0..10 {
        let (status, answer) = post(&app, body, Some(&jwt)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer["error"],
            "cannot record the webhook now; retry later"
        );
    }
    assert_eq!(app.sim.calls("/webhook_verification_key/get"), 2);
    assert_eq!(app.count("webhook_deliveries").await, 0);
    app.stop().await;
}

// 7 (the input half). Free-form details are bounded.

/// A connect flow of a provider linkstate cannot call, so no provider call is needed.
async fn finicity_flow(app: &TestApp, key: &str, customer: &str) -> proto::Connection {
    app.connections()
        .await
        .create_connection(authed(
            key,
            proto::CreateConnectionRequest {
                service_provider: proto::service_provider::Value::Finicity as i32,
                external_customer_id: customer.into(),
                institution_id: "101732".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// A `google.protobuf.Struct` of one string field of `bytes` bytes.
fn details_of(bytes: usize) -> prost_types::Struct {
    prost_types::Struct {
        fields: [(
            "payload".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("x".repeat(bytes))),
            },
        )]
        .into(),
    }
}

async fn fail_flow(
    app: &TestApp,
    key: &str,
    id: &str,
    reason: &str,
    details: prost_types::Struct,
) -> Result<proto::Connection, tonic::Status> {
    app.connections()
        .await
        .fail_connection(authed(
            key,
            proto::FailConnectionRequest {
                connection_id: id.into(),
                reason: reason.into(),
                service_provider_details: Some(details),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_provider_details_over_64_kib_are_refused_and_nothing_is_sent() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let flow = finicity_flow(&app, &key, "customer-1").await;
    let error = fail_flow(&app, &key, &flow.id, "UNFORESEEN", details_of(70_000))
        .await
        .unwrap_err();
    assert_status(
        &error,
        Code::InvalidArgument,
        "serviceProviderDetails is larger than 65536 bytes",
    );
    assert_eq!(connection(&app, &key, &flow.id).await, flow);
    assert_eq!(app.count("events").await, 0);
    // Within the bound, it is passed on whole.
    fail_flow(&app, &key, &flow.id, "UNFORESEEN", details_of(60_000))
        .await
        .unwrap();
    // CONNECTION_FAILED and its STATUS_CHANGE.
    assert_eq!(app.count("events").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_events_page_of_large_events_stays_under_the_default_message_limit() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    for i in 0..80 {
        let flow = finicity_flow(&app, &key, &format!("customer-{i}")).await;
        fail_flow(&app, &key, &flow.id, "UNFORESEEN", details_of(60_000))
            .await
            .unwrap();
    }
    // 80 CONNECTION_FAILED of 60 KB (and their STATUS_CHANGE): a whole default page of 100
    // would be 4.8 MB, over the 4 MiB that clients accept by default (tonic's here).
    let mut client = app.events().await;
    let first = client
        .list_events(authed(&key, proto::ListEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        (10..100).contains(&first.events.len()),
        "{} events",
        first.events.len()
    );
    let all = all_events(&app, &key).await;
    assert_eq!(
        all.len(),
        160,
        "the next cursor continues where the page stopped"
    );
    app.stop().await;
}

// 8. NUL bytes, dates and cursors are checked at the edge.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_any_string_are_invalid_arguments_naming_the_field() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let mut connections = app.connections().await;
    let refused = connections
        .import_connections(authed(
            &key,
            import_request(vec![
                plaid_item("customer-1", item.access_token.expose()),
                plaid_item("cust\0omer", item.access_token.expose()),
            ]),
        ))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "connections[1]: externalCustomerId must not contain NUL bytes",
    );
    assert_nothing_written(&app).await;

    let refused = connections
        .create_connection(authed(
            &key,
            proto::CreateConnectionRequest {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: "customer-1".into(),
                institution_id: "ins_\u{0}109508".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        "institutionId must not contain NUL bytes"
    );
    let refused = connections
        .list_connections(authed(
            &key,
            proto::ListConnectionsRequest {
                external_customer_id: "a\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "externalCustomerId must not contain NUL bytes",
    );
    let refused = app
        .financial_data()
        .await
        .list_financial_accounts(authed(
            &key,
            proto::ListFinancialAccountsRequest {
                external_customer_id: "a\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = app
        .events()
        .await
        .list_events(authed(
            &key,
            proto::ListEventsRequest {
                external_customer_id: "a\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        "externalCustomerId must not contain NUL bytes"
    );

    let flow = finicity_flow(&app, &key, "customer-1").await;
    let refused = fail_flow(&app, &key, &flow.id, "UNFORE\0SEEN", details_of(1))
        .await
        .unwrap_err();
    assert_eq!(refused.message(), "reason must not contain NUL bytes");
    let nul_details = prost_types::Struct {
        fields: [(
            "k".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("a\0b".into())),
            },
        )]
        .into(),
    };
    let refused = fail_flow(&app, &key, &flow.id, "UNFORESEEN", nul_details)
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        "serviceProviderDetails must not contain NUL bytes"
    );
    assert_eq!(app.count("events").await, 0);
    assert_eq!(connection(&app, &key, &flow.id).await, flow);
    app.stop().await;
}

fn token(value: serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_tokens_and_cursors_beyond_what_the_database_holds_are_invalid_arguments() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    let mut data = app.financial_data().await;
    let list = |start_date: &str, page_token: String| proto::ListTransactionsRequest {
        connection_id: connection.id.clone(),
        start_date: start_date.into(),
        page_token,
        ..Default::default()
    };
    let refused = data
        .list_transactions(authed(&key, list("-4714-01-01", String::new())))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "startDate must be between year 1 and year 9999",
    );
    let ancient = token(json!(["-4714-01-01", uuid::Uuid::nil()]));
    let refused = data
        .list_transactions(authed(&key, list("", ancient)))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "pageToken is not one this service handed out",
    );
    let ancient = token(json!({"created_at": "-4000-01-01T00:00:00Z", "id": uuid::Uuid::nil()}));
    let refused = app
        .connections()
        .await
        .list_connections(authed(
            &key,
            proto::ListConnectionsRequest {
                page_token: ancient,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        "pageToken is not one this service handed out"
    );

    // A cursor whose transaction id is beyond a bigint.
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(1u64 << 63).to_be_bytes());
    bytes[15] = 1;
    let beyond = URL_SAFE_NO_PAD.encode(bytes);
    let mut events = app.events().await;
    let refused = events
        .list_events(authed(
            &key,
            proto::ListEventsRequest {
                after_cursor: beyond.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "afterCursor: cursor is not one linkstate handed out",
    );
    let refused = events
        .stream_events(authed(
            &key,
            proto::StreamEventsRequest {
                after_cursor: beyond,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reports_each_item_as_committed_or_not_when_the_database_refuses_one() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let fine = app.sim.create_item("ins_109508");
    let refused = app.sim.create_item("ins_109508");
    sql(
        &app,
        &format!(
            "ALTER TABLE connections ADD CONSTRAINT refuse_one \
             CHECK (provider_connection_id <> '{}')",
            refused.item_id
        ),
    )
    .await;
    let response = common::import_items(
        &app,
        &key,
        vec![
            plaid_item("customer-1", fine.access_token.expose()),
            plaid_item("customer-2", refused.access_token.expose()),
        ],
    )
    .await;
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("the first item failed: {:?}", response.results[0]);
    };
    let Some(import_result::Result::Error(error)) = &response.results[1].result else {
        panic!("the second item was imported: {:?}", response.results[1]);
    };
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        (
            "INTERNAL",
            "internal error; nothing of this item was written"
        )
    );
    assert_eq!(app.count("connections").await, 1);
    assert_eq!(
        app.count("customers WHERE external_customer_id = 'customer-2'")
            .await,
        0
    );
    assert_eq!(
        app.count(&format!("connections WHERE id = '{}'", connection.id))
            .await,
        1
    );
    app.stop().await;
}

// 10. Error messages quote at most an excerpt of the input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_quote_only_an_excerpt_of_a_huge_input() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let huge = "x".repeat(3_000_000);
    let refused = app
        .connections()
        .await
        .get_connection(authed(
            &key,
            proto::GetConnectionRequest {
                connection_id: huge.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(
        refused.message().len() < 200,
        "{} bytes",
        refused.message().len()
    );
    assert!(refused.message().starts_with("connection \"xxxx"));
    let refused = app
        .financial_data()
        .await
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                customer_id: huge.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().len() < 200);
    let refused = app
        .financial_data()
        .await
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                customer_id: uuid::Uuid::nil().to_string(),
                start_date: huge,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(refused.message().len() < 200);
    app.stop().await;
}

// 11. Institutions: shared only from a provider's answer, otherwise the tenant's own.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_can_add_an_institution_that_others_see() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other) = app.account("globex").await;
    let create = |key: String, provider: proto::service_provider::Value, institution: String| {
        let app = &app;
        async move {
            app.connections()
                .await
                .create_connection(authed(
                    &key,
                    proto::CreateConnectionRequest {
                        service_provider: provider as i32,
                        external_customer_id: "customer-1".into(),
                        institution_id: institution,
                    },
                ))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    use proto::service_provider::Value as P;
    let refused = create(key.clone(), P::Plaid, "ins_made_up".into())
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::InvalidArgument,
        "institutionId \"ins_made_up\" is not an institution PLAID knows",
    );
    assert_eq!(app.count("institutions").await, 0);
    assert_eq!(app.count("customers").await, 0);

    let plaid = create(key.clone(), P::Plaid, "ins_109508".into())
        .await
        .unwrap();
    assert_eq!(plaid.institution_name, "First Platypus Bank");
    let shared = create(other.clone(), P::Plaid, plaid.institution_id.clone())
        .await
        .unwrap();
    assert_eq!(
        shared.institution_id, plaid.institution_id,
        "Plaid's are shared"
    );

    let own = create(key.clone(), P::Finicity, "bank-x".into())
        .await
        .unwrap();
    let refused = create(other.clone(), P::Finicity, own.institution_id.clone())
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        format!(
            "institutionId {:?} names no institution",
            own.institution_id
        )
    );
    let theirs = create(other.clone(), P::Finicity, "bank-x".into())
        .await
        .unwrap();
    assert_ne!(theirs.institution_id, own.institution_id);
    assert_eq!(
        app.count("institutions WHERE owner_account_id IS NOT NULL")
            .await,
        2
    );
    let refused = create(key.clone(), P::Mx, "m".repeat(256))
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        "institutionId is longer than 255 characters"
    );
    app.stop().await;
}
