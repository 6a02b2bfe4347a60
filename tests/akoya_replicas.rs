//! Akoya's rotating tokens across real `linkstate serve` processes: two replicas working one
//! consent at once never send a stale token, and SIGKILLs in the middle of refreshes leave
//! every consent either refreshing or honestly RECONNECT_REQUIRED, never stuck.

mod common;

use std::time::{Duration, Instant};

use linkstate::cipher::Cipher;
use linkstate::domain::ids::ConnectionId;
use linkstate::proto::{self, connection, import_result};
use linkstate::store::{self, credentials};
use linkstate_sim::{AkoyaConsent, Simulator};
use linkstate_testing::authed;
use rand::RngExt;

use common::process::{Service, Setup};

/// Short leases, so that what a killed replica held is taken over soon.
const LEASE: [(&str, &str); 1] = [("LINKSTATE_JOB_LEASE", "2s")];

async fn client(
    service: &Service,
) -> proto::connection_service_client::ConnectionServiceClient<tonic::transport::Channel> {
    proto::connection_service_client::ConnectionServiceClient::new(service.channel().await)
}

/// Imports the consents through `service`; answers their connection ids in order.
async fn import(service: &Service, key: &str, consents: &[AkoyaConsent]) -> Vec<String> {
    let items = consents
        .iter()
        .enumerate()
        .map(|(i, consent)| proto::ImportConnection {
            service_provider: proto::service_provider::Value::Akoya as i32,
            external_customer_id: format!("customer-{i}"),
            refresh_token: consent.refresh_token.expose().into(),
            provider_id: consent.provider_id.clone(),
            ..Default::default()
        })
        .collect();
    let response = client(service)
        .await
        .import_connections(authed(
            key,
            proto::ImportConnectionsRequest {
                connections: items,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    response
        .results
        .into_iter()
        .map(|result| match result.result {
            Some(import_result::Result::Connection(c)) => c.id,
            other => panic!("import failed: {other:?}"),
        })
        .collect()
}

async fn refresh(service: &Service, key: &str, id: &str) {
    // A refresh of a connection that is no longer ACTIVE is refused; that is an answer too.
    let _ = client(service)
        .await
        .refresh_connection(authed(
            key,
            proto::RefreshConnectionRequest {
                connection_id: id.into(),
                products: Vec::new(),
            },
        ))
        .await;
}

async fn status(service: &Service, key: &str, id: &str) -> (i32, Option<i32>) {
    let connection = client(service)
        .await
        .get_connection(authed(
            key,
            proto::GetConnectionRequest {
                connection_id: id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (connection.status, connection.status_reason)
}

async fn stored_refresh_token(setup: &Setup, id: &str) -> String {
    let cipher = Cipher::from_base64(&setup.replicas.key).unwrap();
    let mut conn = store::connect(&setup.pool).await.unwrap();
    let id = ConnectionId(id.parse().unwrap());
    let tokens = credentials::akoya_tokens(&mut conn, &cipher, id)
        .await
        .unwrap();
    tokens.refresh_token.expose().to_string()
}

/// Waits until no job is left to run (`limit` at most).
async fn wait_drained(setup: &Setup, limit: Duration) {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let started = Instant::now();
    loop {
        let mut conn = store::connect(&setup.pool).await.unwrap();
        let live = diesel::sql_query("SELECT count(*) AS n FROM jobs WHERE dead_at IS NULL")
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n;
        if live == 0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{live} jobs still live after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_working_one_consent_at_once_never_send_a_stale_token() {
    let setup = Setup::new().await;
    // Id tokens shorter-lived than linkstate's margin: every run refreshes.
    setup
        .sim
        .set_akoya_id_token_lifetime(Duration::from_secs(60));
    let (_, key) = setup.api_key().await;
    let a = setup.start(&LEASE).await;
    let b = setup.start(&LEASE).await;
    let consent = setup.sim.create_akoya_consent("mikomo");
    let id = import(&a, &key, std::slice::from_ref(&consent))
        .await
        .remove(0);
    wait_drained(&setup, Duration::from_secs(20)).await;
    let notify_url = format!("http://127.0.0.1:{}/webhooks/akoya", b.http);
    for round in 0..50 {
        // A refresh on each replica and a consent notice, all at once.
        let mut notice = Simulator::akoya_notification(
            "CONSENT",
            "CONSENT_UPDATED",
            &consent.consent_id,
            "mikomo",
        );
        notice["notificationId"] = format!("round-{round}").into();
        setup.sim.send_akoya_notification(&notify_url, &notice);
        tokio::join!(refresh(&a, &key, &id), refresh(&b, &key, &id));
        wait_drained(&setup, Duration::from_secs(20)).await;
    }
    assert_eq!(
        setup.sim.akoya_refused_refreshes(),
        0,
        "no stale token was ever sent"
    );
    assert!(setup.sim.akoya_refreshes(&consent.consent_id) >= 50);
    assert_eq!(
        Some(stored_refresh_token(&setup, &id).await),
        setup
            .sim
            .akoya_refresh_token(&consent.consent_id)
            .map(|t| t.expose().to_string())
    );
    assert_eq!(
        status(&a, &key, &id).await.0,
        connection::Status::Active as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_a_hundred_refreshes_leave_no_consent_stuck() {
    let setup = Setup::new().await;
    setup
        .sim
        .set_akoya_id_token_lifetime(Duration::from_secs(60));
    // Slow enough that kills land in the middle of refreshes and pulls.
    setup.sim.set_latency(Duration::from_millis(20));
    let (_, key) = setup.api_key().await;
    let mut service = setup.start(&LEASE).await;
    let consents: Vec<_> = (0..10)
        .map(|_| setup.sim.create_akoya_consent("mikomo"))
        .collect();
    let ids = import(&service, &key, &consents).await;
    wait_drained(&setup, Duration::from_secs(30)).await;
    for _ in 0..10 {
        for id in &ids {
            refresh(&service, &key, id).await;
        }
        let pause = rand::rng().random_range(0..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        service.kill();
        service = setup.start(&LEASE).await;
    }
    setup.sim.set_latency(Duration::ZERO);
    wait_drained(&setup, Duration::from_secs(60)).await;
    // Whatever a kill cut off, each consent now refreshes, or says plainly that it cannot.
    for (id, consent) in ids.iter().zip(&consents) {
        refresh(&service, &key, id).await;
        wait_drained(&setup, Duration::from_secs(30)).await;
        let (status_now, reason) = status(&service, &key, id).await;
        if status_now == connection::Status::Active as i32 {
            assert_eq!(
                Some(stored_refresh_token(&setup, id).await),
                setup
                    .sim
                    .akoya_refresh_token(&consent.consent_id)
                    .map(|t| t.expose().to_string()),
                "an ACTIVE consent holds Akoya's newest token"
            );
        } else {
            assert_eq!(
                (status_now, reason),
                (
                    connection::Status::ReconnectRequired as i32,
                    Some(connection::StatusReason::TokenExpired as i32)
                ),
                "a consent that lost its token says so"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ever_reaches_the_log() {
    let setup = Setup::new().await;
    setup
        .sim
        .set_akoya_id_token_lifetime(Duration::from_secs(60));
    let (_, key) = setup.api_key().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let service = setup.replicas.start_logging(
        common::process::free_port(),
        common::process::free_port(),
        &[("RUST_LOG", "debug")],
        log.reopen().unwrap(),
    );
    service.wait_ready().await;
    let consent = setup.sim.create_akoya_consent("mikomo");
    let id = import(&service, &key, std::slice::from_ref(&consent))
        .await
        .remove(0);
    wait_drained(&setup, Duration::from_secs(20)).await;
    refresh(&service, &key, &id).await;
    wait_drained(&setup, Duration::from_secs(20)).await;
    let refused = proto::ImportConnection {
        service_provider: proto::service_provider::Value::Akoya as i32,
        refresh_token: "akoya-refresh-a-secret-never-issued".into(),
        provider_id: "mikomo".into(),
        ..Default::default()
    };
    let _ = client(&service)
        .await
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: vec![refused],
                ..Default::default()
            },
        ))
        .await;
    drop(service);
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logged.contains("DEBUG"),
        "the log was written at debug level"
    );
    let newest = setup.sim.akoya_refresh_token(&consent.consent_id).unwrap();
    for secret in [
        consent.refresh_token.expose(),
        newest.expose(),
        "akoya-refresh-a-secret-never-issued",
        setup.replicas.key.as_str(),
    ] {
        assert!(!logged.contains(secret), "a secret in the log");
    }
    // Nor the id tokens: every JWT the simulator issues starts with the same header.
    assert!(
        !logged.contains("eyJ0eXAiOiJKV1Qi") && !logged.contains("eyJhbGciOi"),
        "an id token in the log"
    );
}
