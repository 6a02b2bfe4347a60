//! Outbound webhooks: profiles, signed deliveries to a real receiver on port 0, retries,
//! 410, redirects, give-up and redelivery, the address guard, tenant isolation, and the
//! import's warning.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::Code;

use common::{assert_status, import, import_request, plaid_item};
use linkstate::domain::cursor::Cursor;
use linkstate::domain::webhook_signature::SigningSecret;
use linkstate::proto;
use linkstate::store::{self, webhook_profiles, webhook_profiles::NewProfile};
use linkstate_testing::receiver::{Received, Receiver, Reply};
use linkstate_testing::{TestApp, authed};

fn create(name: &str, url: &str) -> proto::CreateWebhookProfileRequest {
    proto::CreateWebhookProfileRequest {
        name: name.into(),
        url: url.into(),
        ..Default::default()
    }
}

async fn create_profile(app: &TestApp, key: &str, url: &str) -> proto::WebhookProfile {
    app.profiles()
        .await
        .create_webhook_profile(authed(key, create("ops", url)))
        .await
        .unwrap()
        .into_inner()
}

async fn deliveries(app: &TestApp, key: &str, profile_id: &str) -> Vec<proto::Delivery> {
    app.profiles()
        .await
        .list_deliveries(authed(
            key,
            proto::ListDeliveriesRequest {
                profile_id: profile_id.into(),
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

/// SendTestWebhook for a profile.
async fn send_test(
    app: &TestApp,
    key: &str,
    profile_id: &str,
) -> Result<tonic::Response<proto::Delivery>, tonic::Status> {
    app.profiles()
        .await
        .send_test_webhook(authed(
            key,
            proto::SendTestWebhookRequest {
                profile_id: profile_id.into(),
            },
        ))
        .await
}

/// Meld's signature, computed here with the hmac crate from the request as received.
fn meld_signature(secret: &str, received: &Received, url: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(
        received
            .header("meld-signature-timestamp")
            .unwrap()
            .as_bytes(),
    );
    mac.update(b".");
    mac.update(url.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    URL_SAFE.encode(mac.finalize().into_bytes())
}

/// Standard Webhooks' own verifier on the request as received.
fn standard_verify(secret: &str, received: &Received) -> Result<(), String> {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, received.header(name).unwrap().parse().unwrap());
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&received.body, &headers)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_created_read_listed_updated_rotated_and_deleted() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;
    let mut client = app.profiles().await;
    let created = create_profile(&app, &key, "https://hooks.example.com/meld").await;
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(&created.secret["whsec_".len()..])
        .unwrap();
    assert_eq!(key_bytes.len(), 32);
    assert_eq!(created.account_id, account_id.to_string());
    assert_eq!(
        created.status,
        proto::webhook_profile::Status::Active as i32
    );
    assert_eq!(created.event_version, "2023-07-31");

    let got = client
        .get_webhook_profile(authed(
            &key,
            proto::GetWebhookProfileRequest {
                profile_id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.secret, "", "the secret is shown once");
    assert_eq!(got.url, "https://hooks.example.com/meld");

    let updated = client
        .update_webhook_profile(authed(
            &key,
            proto::UpdateWebhookProfileRequest {
                profile: Some(proto::WebhookProfile {
                    id: created.id.clone(),
                    name: "renamed".into(),
                    url: "ignored: not in the mask".into(),
                    status: proto::webhook_profile::Status::Disabled as i32,
                    event_types: vec![proto::event::Type::BankLinkingAccountsUpdated as i32],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into(), "status".into(), "eventTypes".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.url, "https://hooks.example.com/meld");
    assert_eq!(
        updated.status,
        proto::webhook_profile::Status::Disabled as i32
    );
    assert_eq!(
        updated.disabled_reason,
        proto::webhook_profile::DisabledReason::ByRequest as i32
    );
    assert_eq!(updated.event_types.len(), 1);

    let rotated = client
        .rotate_webhook_profile_secret(authed(
            &key,
            proto::RotateWebhookProfileSecretRequest {
                profile_id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_"));
    assert_ne!(rotated.secret, created.secret);

    create_profile(&app, &key, "https://second.example.com/h").await;
    let first = client
        .list_webhook_profiles(authed(
            &key,
            proto::ListWebhookProfilesRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.profiles.len(), 1);
    assert_eq!(first.profiles[0].id, created.id, "oldest first");
    let second = client
        .list_webhook_profiles(authed(
            &key,
            proto::ListWebhookProfilesRequest {
                page_size: 1,
                page_token: first.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.profiles.len(), 1);
    assert!(second.next_page_token.is_empty());

    client
        .delete_webhook_profile(authed(
            &key,
            proto::DeleteWebhookProfileRequest {
                profile_id: created.id.clone(),
            },
        ))
        .await
        .unwrap();
    let gone = client
        .get_webhook_profile(authed(
            &key,
            proto::GetWebhookProfileRequest {
                profile_id: created.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_status(
        &gone,
        Code::NotFound,
        &format!("webhook profile {} not found", created.id),
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_profiles_are_refused_with_the_field_named_and_nothing_written() {
    let app = TestApp::start_with(|config| config.delivery.allow_private = false).await;
    let (_, key) = app.account("acme").await;
    let mut client = app.profiles().await;
    let refused = "url points at a loopback, private or otherwise non-public address";
    let cases: Vec<(proto::CreateWebhookProfileRequest, &str)> = vec![
        (
            create("", "https://hooks.example.com/h"),
            "name is required",
        ),
        (create("ops", ""), "url is required"),
        (
            create("ops", "hooks.example.com"),
            "url must be an absolute http(s) URL",
        ),
        (
            create("ops", "http://hooks.example.com/h"),
            "url must use https (plain http only with LINKSTATE_DELIVERY_ALLOW_PRIVATE)",
        ),
        (create("ops", "https://127.0.0.1/h"), refused),
        (create("ops", "https://[::1]/h"), refused),
        (create("ops", "https://10.1.2.3/h"), refused),
        (create("ops", "https://172.16.0.1/h"), refused),
        (create("ops", "https://192.168.1.1/h"), refused),
        (
            create("ops", "https://169.254.169.254/latest/meta-data"),
            refused,
        ),
        (create("ops", "https://100.64.0.1/h"), refused),
        (create("ops", "https://[fc00::1]/h"), refused),
        (create("ops", "https://0.0.0.0/h"), refused),
        (create("ops", "https://localhost/h"), refused),
        (
            proto::CreateWebhookProfileRequest {
                event_types: vec![0],
                ..create("ops", "https://hooks.example.com/h")
            },
            "eventTypes has an unknown or unset value",
        ),
        (
            proto::CreateWebhookProfileRequest {
                event_version: "2021-10-27".into(),
                ..create("ops", "https://hooks.example.com/h")
            },
            "eventVersion must be 2023-07-31",
        ),
        (
            create("a\0b", "https://hooks.example.com/h"),
            "name must not contain NUL bytes",
        ),
        (
            create("ops", " https://hooks.example.com/h"),
            "url must not contain whitespace",
        ),
        (
            create("ops", "https://hooks.example.com/h\t"),
            "url must not contain whitespace",
        ),
    ];
    for (request, message) in cases {
        let error = client
            .create_webhook_profile(authed(&key, request))
            .await
            .unwrap_err();
        assert_status(&error, Code::InvalidArgument, message);
    }
    assert_eq!(app.count("webhook_profiles").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_profile_and_deliveries_are_not_found() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other) = app.account("other").await;
    let profile = create_profile(&app, &key, "https://hooks.example.com/h").await;
    let mut client = app.profiles().await;
    let message = format!("webhook profile {} not found", profile.id);
    let get = client
        .get_webhook_profile(authed(
            &other,
            proto::GetWebhookProfileRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_status(&get, Code::NotFound, &message);
    let list = client
        .list_deliveries(authed(
            &other,
            proto::ListDeliveriesRequest {
                profile_id: profile.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_status(&list, Code::NotFound, &message);
    let delete = client
        .delete_webhook_profile(authed(
            &other,
            proto::DeleteWebhookProfileRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_status(&delete, Code::NotFound, &message);
    let test = send_test(&app, &other, &profile.id.to_string())
        .await
        .unwrap_err();
    assert_status(&test, Code::NotFound, &message);
    let update = client
        .update_webhook_profile(authed(
            &other,
            proto::UpdateWebhookProfileRequest {
                profile: Some(proto::WebhookProfile {
                    id: profile.id.clone(),
                    name: "taken over".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_status(&update, Code::NotFound, &message);
    let rotate = client
        .rotate_webhook_profile_secret(authed(
            &other,
            proto::RotateWebhookProfileSecretRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_status(&rotate, Code::NotFound, &message);
    let redeliver = client
        .redeliver_events(authed(
            &other,
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                event_ids: vec![uuid::Uuid::new_v4().to_string()],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_status(&redeliver, Code::NotFound, &message);
    // The profile is as it was made: not renamed, its secret not rotated, nothing sent or queued.
    assert_eq!(
        app.count(&format!(
            "webhook_profiles WHERE name = '{}' AND previous_secret IS NULL",
            profile.name
        ))
        .await,
        1
    );
    assert_eq!(app.count("outbound_deliveries").await, 0);
    let listed = client
        .list_webhook_profiles(authed(&other, proto::ListWebhookProfilesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.profiles.is_empty());
    assert_eq!(app.count("webhook_profiles").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_by_both_schemes_in_meld_envelopes() {
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;
    let receiver = Receiver::start(Vec::new()).await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    let item = app.sim.create_item("ins_109508");
    import(&app, &key, &item).await;
    let received = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert!(received.len() >= 3, "got {}", received.len());
    let first = &received[0];
    assert_eq!(first.path, "/hook");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.header("user-agent"),
        Some(concat!("linkstate/", env!("CARGO_PKG_VERSION")))
    );
    let keys: Vec<String> = first.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "eventType",
            "eventId",
            "timestamp",
            "accountId",
            "profileId",
            "version",
            "payload"
        ]
    );
    let body = first.json();
    assert_eq!(body["eventType"], "BANK_LINKING_ACCOUNTS_UPDATING");
    assert_eq!(body["accountId"], account_id.to_string());
    assert_eq!(body["profileId"], profile.id);
    assert_eq!(first.header("webhook-id"), body["eventId"].as_str());
    for request in &received {
        assert_eq!(
            request.header("meld-signature").unwrap(),
            meld_signature(&profile.secret, request, &receiver.url)
        );
        standard_verify(&profile.secret, request).unwrap();
        assert!(request.header("meld-retry-count").is_none());
    }
    // Each recorded as one successful attempt (the record follows the answer).
    let succeeded_once = |d: &proto::Delivery| {
        d.status == proto::delivery::Status::Succeeded as i32 && d.attempts.len() == 1
    };
    let mut listed = deliveries(&app, &key, &profile.id).await;
    for _ in 0..200 {
        if listed.len() >= 3 && listed.iter().all(succeeded_once) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = deliveries(&app, &key, &profile.id).await;
    }
    assert!(listed.len() >= 3);
    assert!(listed.iter().all(succeeded_once), "{listed:#?}");
    app.stop().await;
}

/// Meld signs "the exact url": the URL as the tenant registered it, which the receiver checks
/// against its own copy, not as a URL parser writes it back (lower-cased scheme, no `.`
/// segments).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meld_signature_covers_the_url_exactly_as_registered() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(Vec::new()).await;
    let typed = receiver
        .url
        .replace("http://", "HTTP://")
        .replace("/hook", "/./hook");
    let profile = create_profile(&app, &key, &typed).await;
    assert_eq!(profile.url, typed, "kept as typed");
    send_test(&app, &key, &profile.id).await.unwrap();
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].path, "/hook");
    assert_eq!(
        received[0].header("meld-signature").unwrap(),
        meld_signature(&profile.secret, &received[0], &typed)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_with_the_retry_headers_until_it_answers() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(vec![
        Reply::Status(503, Vec::new()),
        Reply::Hang(Duration::from_secs(5)),
    ])
    .await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    let delivery = send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.event_type, "WEBHOOK_TEST");
    assert_eq!(delivery.status, proto::delivery::Status::Retrying as i32);
    assert_eq!(delivery.attempts[0].response_status, 503);
    assert_eq!(delivery.attempts[0].error, "HTTP error: 503");
    // The second attempt hangs past the 2 s timeout; meanwhile the port closes, so the third
    // is refused. It opens again once the refusal is recorded, for the fourth.
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await.len(), 2);
    receiver.refuse();
    let refused = wait_attempts(&app, &key, &profile.id, 3).await;
    receiver.reopen();
    assert_eq!(refused.attempts[1].error, "Timeout");
    assert_eq!(refused.attempts[2].error, "Could not connect");
    let received = receiver.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 3);
    let retry = |i: usize, name: &str| received[i].header(name).map(str::to_string);
    assert_eq!(retry(0, "meld-retry-count"), None);
    assert_eq!(retry(1, "meld-retry-count").as_deref(), Some("1"));
    assert_eq!(
        retry(1, "meld-retry-reason").as_deref(),
        Some("HTTP error: 503")
    );
    assert_eq!(retry(2, "meld-retry-count").as_deref(), Some("3"));
    assert_eq!(
        retry(2, "meld-retry-reason").as_deref(),
        Some("Could not connect")
    );
    // The same event id on every attempt.
    let ids: Vec<_> = received
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let test_body = received[0].json();
    assert_eq!(test_body["eventType"], "WEBHOOK_TEST");
    assert!(test_body["payload"]["requestId"].is_string());
    let done = wait_status(&app, &key, &profile.id, proto::delivery::Status::Succeeded).await;
    assert_eq!(done.attempts.len(), 4);
    let errors: Vec<_> = done.attempts.iter().map(|a| a.error.as_str()).collect();
    assert_eq!(
        errors,
        ["HTTP error: 503", "Timeout", "Could not connect", ""]
    );
    // The schedule: 200 ms, 400 ms, 800 ms (+ up to 10%), each wait counted from the end of
    // the attempt before it.
    let ended = |i: usize| {
        at(&done.attempts[i]) + chrono::Duration::milliseconds(done.attempts[i].duration_ms as i64)
    };
    let wait = |i: usize| (at(&done.attempts[i]) - ended(i - 1)).num_milliseconds();
    for (i, base) in [(1, 200), (2, 400), (3, 800)] {
        assert!(
            wait(i) >= base,
            "wait before attempt {}: {} ms",
            i + 1,
            wait(i)
        );
    }
    app.stop().await;
}

/// When an attempt started.
fn at(attempt: &proto::DeliveryAttempt) -> chrono::DateTime<chrono::Utc> {
    let at = attempt.attempted_at.as_ref().unwrap();
    chrono::DateTime::from_timestamp(at.seconds, at.nanos as u32).unwrap()
}

/// The profile's first delivery for which `done` holds (10 s at most, looking every 20 ms).
async fn wait_delivery(
    app: &TestApp,
    key: &str,
    profile_id: &str,
    what: &str,
    done: impl Fn(&proto::Delivery) -> bool,
) -> proto::Delivery {
    for _ in 0..500 {
        if let Some(found) = deliveries(app, key, profile_id)
            .await
            .into_iter()
            .find(&done)
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no delivery {what} within 10 s");
}

/// The profile's delivery once it has `n` attempts.
async fn wait_attempts(app: &TestApp, key: &str, profile_id: &str, n: usize) -> proto::Delivery {
    wait_delivery(app, key, profile_id, &format!("with {n} attempts"), |d| {
        d.attempts.len() >= n
    })
    .await
}

/// The profile's delivery once it is in `status`.
async fn wait_status(
    app: &TestApp,
    key: &str,
    profile_id: &str,
    status: proto::delivery::Status,
) -> proto::Delivery {
    wait_delivery(app, key, profile_id, &format!("in {status:?}"), |d| {
        d.status == status as i32
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_profile_and_a_redirect_is_not_followed() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let target = Receiver::start(Vec::new()).await;
    let redirecting = Receiver::start(vec![Reply::Status(
        307,
        vec![("location", target.url.clone())],
    )])
    .await;
    let profile = create_profile(&app, &key, &redirecting.url).await;
    let mut client = app.profiles().await;
    let test = proto::SendTestWebhookRequest {
        profile_id: profile.id.clone(),
    };
    let delivery = client
        .send_test_webhook(authed(&key, test.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.attempts[0].response_status, 307);
    assert_eq!(delivery.attempts[0].error, "HTTP error: 307");
    assert!(
        target.received().is_empty(),
        "the redirect was not followed"
    );

    let gone = Receiver::start(vec![Reply::Status(410, Vec::new())]).await;
    let profile = create_profile(&app, &key, &gone.url).await;
    let delivery = send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.status, proto::delivery::Status::Failed as i32);
    let now = client
        .get_webhook_profile(authed(
            &key,
            proto::GetWebhookProfileRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status, proto::webhook_profile::Status::Disabled as i32);
    assert_eq!(
        now.disabled_reason,
        proto::webhook_profile::DisabledReason::EndpointGone as i32
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_for() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver =
        Receiver::start(vec![Reply::Status(429, vec![("retry-after", "1".into())])]).await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap();
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2);
    let waited = received[1].at - received[0].at;
    // The schedule alone would have waited 200 ms.
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_given_up_fails_and_is_sent_again_on_request() {
    let app = TestApp::start_with(|config| config.delivery.give_up = Duration::from_secs(1)).await;
    let (_, key) = app.account("acme").await;
    let always_down = (0..20).map(|_| Reply::Status(500, Vec::new())).collect();
    let receiver = Receiver::start(always_down).await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    let item = app.sim.create_item("ins_109508");
    import(&app, &key, &item).await;
    let failed = wait_status(&app, &key, &profile.id, proto::delivery::Status::Failed).await;
    assert!(failed.attempts.len() >= 2);
    assert!(failed.next_attempt_at.is_none());
    let mut client = app.profiles().await;
    let before = receiver.received().len();
    let queued = client
        .redeliver_events(authed(
            &key,
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                event_ids: vec![failed.event_id.clone()],
                only_failed: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .queued;
    assert_eq!(queued, 1);
    // Other events of the import may still be retrying: look for this one among what follows.
    let mut resent = false;
    for _ in 0..200 {
        resent = receiver.received()[before..]
            .iter()
            .any(|r| r.header("webhook-id") == Some(failed.event_id.as_str()));
        if resent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resent, "a redelivery keeps the event's id");
    // By time range, every event of the import (whatever their status).
    let since = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() - 3600,
        nanos: 0,
    };
    let until = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 60,
        nanos: 0,
    };
    let queued = client
        .redeliver_events(authed(
            &key,
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                since: Some(since),
                until: Some(until),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .queued;
    let events = common::all_events(&app, &key).await;
    assert_eq!(queued as usize, events.len());
    // Neither ids nor a range, or both, or a range backwards, or too many ids: refused,
    // nothing queued.
    let queued_before = app.count("outbound_deliveries").await;
    let cases = [
        (
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                ..Default::default()
            },
            "name the events: eventIds, or since and until".to_string(),
        ),
        (
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                event_ids: vec![failed.event_id.clone()],
                since: Some(since),
                until: Some(until),
                ..Default::default()
            },
            "eventIds, or since and until: not both, and both of since and until".to_string(),
        ),
        (
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                since: Some(until),
                until: Some(since),
                ..Default::default()
            },
            "since must be before until".to_string(),
        ),
        (
            proto::RedeliverEventsRequest {
                profile_id: profile.id.clone(),
                event_ids: vec![failed.event_id.clone(); 1001],
                ..Default::default()
            },
            "eventIds names more than 1000 events".to_string(),
        ),
    ];
    for (request, message) in cases {
        let error = client
            .redeliver_events(authed(&key, request))
            .await
            .unwrap_err();
        assert_status(&error, Code::InvalidArgument, &message);
    }
    assert_eq!(app.count("outbound_deliveries").await, queued_before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_allowed_at_creation_is_refused_at_the_attempt_when_private_is_off() {
    let strict = TestApp::start_with(|config| config.delivery.allow_private = false).await;
    let (account_id, key) = strict.account("acme").await;
    let receiver = Receiver::start(Vec::new()).await;
    // As if made while private addresses were allowed: written past the API's checks.
    let profile = {
        let mut conn = store::connect(&strict.pool).await.unwrap();
        let new = NewProfile {
            account_id,
            name: "ops".into(),
            url: receiver.url.clone(),
            event_types: Vec::new(),
            event_version: "2023-07-31".into(),
        };
        let secret = SigningSecret::from_key([9; 32]);
        webhook_profiles::create(
            &mut conn,
            strict.app.ctx.cipher(),
            &new,
            &secret,
            Cursor::START,
        )
        .await
        .unwrap()
    };
    let delivery = send_test(&strict, &key, &profile.id.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.attempts[0].error, "Could not connect");
    assert_eq!(delivery.attempts[0].response_status, 0);
    assert!(receiver.received().is_empty(), "nothing was sent");
    strict.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_warns_when_no_profile_receives_accounts_updated() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let mut connections = app.connections().await;
    let item = app.sim.create_item("ins_109508");
    let answer = connections
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("c-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.warnings.len(), 1);
    assert!(
        answer.warnings[0].contains("webhook profile"),
        "{:?}",
        answer.warnings
    );
    // A profile for other event types only does not count.
    app.profiles()
        .await
        .create_webhook_profile(authed(
            &key,
            proto::CreateWebhookProfileRequest {
                event_types: vec![proto::event::Type::BankLinkingConnectionDeleted as i32],
                ..create("deletions", "https://hooks.example.com/d")
            },
        ))
        .await
        .unwrap();
    let item = app.sim.create_item("ins_109508");
    let answer = connections
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("c-2", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.warnings.len(), 1);
    create_profile(&app, &key, "https://hooks.example.com/all").await;
    let item = app.sim.create_item("ins_109508");
    let answer = connections
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("c-3", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_and_listings_are_refused_and_change_nothing() {
    let app = TestApp::start_with(|config| config.delivery.allow_private = false).await;
    let (_, key) = app.account("acme").await;
    let profile = create_profile(&app, &key, "https://hooks.example.com/h").await;
    let mut client = app.profiles().await;
    let update = |paths: &[&str], url: &str| proto::UpdateWebhookProfileRequest {
        profile: Some(proto::WebhookProfile {
            id: profile.id.clone(),
            name: String::new(),
            url: url.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    for (request, message) in [
        (update(&[], "x"), "updateMask names no field"),
        (
            update(&["secret"], "x"),
            "updateMask: \"secret\" is not a field that can be updated",
        ),
        (update(&["name"], "x"), "name is required"),
        (
            update(&["url"], "https://192.168.0.10/h"),
            "url points at a loopback, private or otherwise non-public address",
        ),
    ] {
        let error = client
            .update_webhook_profile(authed(&key, request))
            .await
            .unwrap_err();
        assert_status(&error, Code::InvalidArgument, message);
    }
    let unchanged = client
        .get_webhook_profile(authed(
            &key,
            proto::GetWebhookProfileRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.name, "ops");
    assert_eq!(unchanged.url, "https://hooks.example.com/h");

    let list = |page_token: &str, statuses: Vec<i32>| proto::ListDeliveriesRequest {
        profile_id: profile.id.clone(),
        page_token: page_token.into(),
        statuses,
        ..Default::default()
    };
    let error = client
        .list_deliveries(authed(&key, list("not-a-token", Vec::new())))
        .await
        .unwrap_err();
    assert_status(
        &error,
        Code::InvalidArgument,
        "pageToken is not one this service handed out",
    );
    let error = client
        .list_deliveries(authed(&key, list("", vec![99])))
        .await
        .unwrap_err();
    assert_status(
        &error,
        Code::InvalidArgument,
        "statuses has an unknown or unset value",
    );
    let error = client
        .get_webhook_profile(authed(
            &key,
            proto::GetWebhookProfileRequest {
                profile_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "profileId is required");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_profile_drops_its_deliveries_and_metrics_count_attempts() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(vec![Reply::Status(500, Vec::new())]).await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    let mut client = app.profiles().await;
    send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap();
    let metrics = common::metrics(&app).await;
    assert!(
        metrics.contains("linkstate_delivery_attempts_total{outcome=\"http_5xx\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("linkstate_delivery_attempt_seconds_count"));
    client
        .delete_webhook_profile(authed(
            &key,
            proto::DeleteWebhookProfileRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(app.count("outbound_deliveries").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_both_secrets_sign_and_meld_uses_the_new_one() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(Vec::new()).await;
    let old = create_profile(&app, &key, &receiver.url).await;
    let mut client = app.profiles().await;
    let new = client
        .rotate_webhook_profile_secret(authed(
            &key,
            proto::RotateWebhookProfileSecretRequest {
                profile_id: old.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    send_test(&app, &key, &old.id.to_string()).await.unwrap();
    let received = receiver.wait_for(1, Duration::from_secs(5)).await;
    let request = &received[0];
    assert_eq!(
        request
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2,
        "the new secret's signature, then the old one's"
    );
    standard_verify(&new.secret, request).unwrap();
    standard_verify(&old.secret, request).unwrap();
    assert_eq!(
        request.header("meld-signature").unwrap(),
        meld_signature(&new.secret, request, &receiver.url)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_read_only_up_to_its_first_64_kib() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(vec![Reply::Endless(200)]).await;
    let profile = create_profile(&app, &key, &receiver.url).await;
    let delivery = send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap()
        .into_inner();
    // Reading stopped at the cap: had it read on, the attempt would have hit the 2 s timeout.
    assert_eq!(
        delivery.status,
        proto::delivery::Status::Succeeded as i32,
        "{delivery:?}"
    );
    let attempt = &delivery.attempts[0];
    assert_eq!((attempt.response_status, attempt.error.as_str()), (200, ""));
    assert!(attempt.duration_ms < 2000, "{} ms", attempt.duration_ms);
    assert!(attempt.response_body.starts_with("xxxx"));
    // An excerpt: 200 characters and an ellipsis.
    assert_eq!(attempt.response_body.chars().count(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profiles_oldest_pending_delivery_is_a_gauge() {
    // Pending for the whole test: the refused endpoint is retried, never given up on.
    let app = TestApp::start_with(|config| config.delivery.give_up = Duration::from_secs(60)).await;
    let (_, key) = app.account("acme").await;
    let receiver = Receiver::start(Vec::new()).await;
    receiver.refuse();
    let profile = create_profile(&app, &key, &receiver.url).await;
    let delivery = send_test(&app, &key, &profile.id.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivery.status, proto::delivery::Status::Retrying as i32);
    // Refreshed every 5 s (by every process in this test binary, each setting only its own
    // profiles: another may clear ours until our next refresh).
    let label = format!(
        "linkstate_delivery_oldest_pending_seconds{{profile_id=\"{}\"}} ",
        profile.id
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(16);
    let age = loop {
        let metrics = common::metrics(&app).await;
        if let Some(line) = metrics.lines().find(|line| line.starts_with(&label)) {
            break line[label.len()..].parse::<f64>().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no gauge for the profile"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(age > 0.0 && age < 20.0, "{age}");
    app.stop().await;
}
