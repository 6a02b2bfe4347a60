//! Rotating the encryption key: old keys open what they sealed, `linkstate reseal` moves every
//! sealed value to the new key while imports run, and after it the old key can go.

mod common;

use std::process::Output;

use common::{import, refresh, wait_until};
use linkstate::cipher::Cipher;
use linkstate::proto;
use linkstate::store::{self, sealed::SEALED_COLUMNS};
use linkstate_testing::{TestApp, authed};

/// `linkstate reseal` on `database_url` with these keys.
async fn reseal(database_url: &str, key: &str, old_keys: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_linkstate"))
        .arg("reseal")
        .env("DATABASE_URL", database_url)
        .env("LINKSTATE_ENCRYPTION_KEY", key)
        .env("LINKSTATE_ENCRYPTION_OLD_KEYS", old_keys)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

/// Every sealed value in the database, with its column and row.
async fn sealed_values(pool: &store::DbPool) -> Vec<(&'static str, uuid::Uuid, Vec<u8>)> {
    let mut conn = store::connect(pool).await.unwrap();
    let mut all = Vec::new();
    for column in &SEALED_COLUMNS {
        for value in column.page(&mut conn, None, 100_000).await.unwrap() {
            all.push((column.column, value.id, value.sealed));
        }
    }
    all
}

async fn create_profile(app: &TestApp, key: &str) -> String {
    let mut profiles = app.profiles().await;
    let profile = profiles
        .create_webhook_profile(authed(
            key,
            proto::CreateWebhookProfileRequest {
                name: "ops".into(),
                url: "http://127.0.0.1:9/hooks".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // A rotation keeps the previous secret, sealed too.
    profiles
        .rotate_webhook_profile_secret(authed(
            key,
            proto::RotateWebhookProfileSecretRequest {
                profile_id: profile.id.clone(),
            },
        ))
        .await
        .unwrap();
    profile.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_rotated_while_imports_run_and_the_old_key_can_then_go() {
    let (old_key, new_key) = (Cipher::generate_key(), Cipher::generate_key());
    let first = TestApp::start_with(|c| c.cipher = Cipher::from_base64(&old_key).unwrap()).await;
    let (_, key) = first.account("tenant").await;
    let mut before = Vec::new();
    for _ in 0..5 {
        before.push(import(&first, &key, &first.sim.create_item("ins_109508")).await);
    }
    create_profile(&first, &key).await;
    wait_until(|| async { first.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let sealed_before = sealed_values(&first.pool).await;
    assert!(sealed_before.len() >= 5 + 2, "credentials and both secrets");

    // The new key without the old one opens nothing that is there: reseal refuses, names the
    // values, and changes nothing.
    let refused = reseal(&first.database.url, &new_key, "").await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "{} value(s) open with no configured key",
            sealed_before.len()
        )) && stderr.contains("connections.credentials of "),
        "{stderr}"
    );
    assert_eq!(sealed_values(&first.pool).await, sealed_before);

    // The rolling deploy: a replica with the new key and the old one takes over.
    let rotated = Cipher::from_base64(&new_key)
        .unwrap()
        .with_old_keys([old_key.as_str()])
        .unwrap();
    let url = first.database.url.clone();
    let sim = format!("http://{}", first.sim_addr);
    let second = TestApp::start_with(|c| {
        c.database_url = url.clone();
        c.plaid.base_url = sim.clone();
        c.cipher = rotated;
    })
    .await;
    // The first replica goes; its database and simulator stay.
    let TestApp {
        app: old_replica,
        sim: simulator,
        pool,
        database,
        ..
    } = first;
    old_replica.stop().await;
    refresh(&second, &key, &before[0].id).await.unwrap();

    // Imports run on the new replica while reseal walks the tables.
    let importing = {
        let items: Vec<_> = (0..20)
            .map(|_| simulator.create_item("ins_109508"))
            .collect();
        let (channel, key) = (second.channel().await, key.clone());
        tokio::spawn(async move {
            let mut client =
                proto::connection_service_client::ConnectionServiceClient::new(channel);
            for (i, item) in items.iter().enumerate() {
                let request = proto::ImportConnectionsRequest {
                    connections: vec![common::plaid_item(
                        &format!("during-{i}"),
                        item.access_token.expose(),
                    )],
                    ..Default::default()
                };
                client
                    .import_connections(authed(&key, request))
                    .await
                    .unwrap();
            }
        })
    };
    let resealed = reseal(&url, &new_key, &old_key).await;
    importing.await.unwrap();
    let stdout = String::from_utf8_lossy(&resealed.stdout);
    assert_eq!(
        resealed.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&resealed.stderr)
    );
    assert!(stdout.contains("moved to the current key"), "{stdout}");

    // Everything, including what the imports wrote meanwhile, opens with the new key alone.
    let new_only = Cipher::from_base64(&new_key).unwrap();
    let after = sealed_values(&pool).await;
    assert!(after.len() >= sealed_before.len() + 20);
    for (column, id, sealed) in &after {
        assert!(
            new_only.open(sealed, id.as_bytes()).is_ok(),
            "{column} of {id} is still under the old key"
        );
    }
    // A second run finds nothing to move.
    let again = reseal(&url, &new_key, &old_key).await;
    assert_eq!(again.status.code(), Some(0));
    let again = String::from_utf8_lossy(&again.stdout);
    let moved = again
        .lines()
        .find(|l| l.starts_with("moved to the current key"))
        .unwrap();
    assert!(moved.ends_with(" 0"), "{again}");

    // The old key goes: a replica with the new key alone refreshes what was imported before.
    second.app.stop().await;
    let third = TestApp::start_with(|c| {
        c.database_url = url.clone();
        c.plaid.base_url = sim.clone();
        c.cipher = Cipher::from_base64(&new_key).unwrap();
    })
    .await;
    for connection in &before {
        refresh(&third, &key, &connection.id).await.unwrap();
    }
    third.stop().await;
    drop((simulator, database));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_rewritten_while_reseal_read_it_is_left_as_the_writer_wrote_it() {
    let app = TestApp::start().await;
    let (_, key) = app.account("tenant").await;
    import(&app, &key, &app.sim.create_item("ins_109508")).await;
    let credentials = SEALED_COLUMNS[0];
    let mut conn = store::connect(&app.pool).await.unwrap();
    let read = column_page(&mut conn, credentials).await;
    // A writer (an Akoya rotation, a repair) replaces the value after reseal read it.
    assert!(
        credentials
            .replace(&mut conn, read.id, &read.sealed, b"written meanwhile")
            .await
            .unwrap()
    );
    let moved = credentials
        .replace(&mut conn, read.id, &read.sealed, b"resealed")
        .await
        .unwrap();
    assert!(!moved, "reseal's write loses to the one it did not see");
    assert_eq!(
        column_page(&mut conn, credentials).await.sealed,
        b"written meanwhile"
    );
}

async fn column_page(
    conn: &mut diesel_async::AsyncPgConnection,
    column: store::sealed::SealedColumn,
) -> store::sealed::SealedValue {
    let mut page = column.page(conn, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    page.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_no_configured_key_opens_is_a_named_failure_of_its_connection() {
    let first = TestApp::start().await;
    let (_, key) = first.account("tenant").await;
    let item = first.sim.create_item("ins_109508");
    let imported = import(&first, &key, &item).await;
    wait_until(|| async { first.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let connection = common::connection(&first, &key, &imported.id).await;
    // The operator restarts with a new key and forgets the old one.
    let (url, sim) = (
        first.database.url.clone(),
        format!("http://{}", first.sim_addr),
    );
    let TestApp {
        app: old_replica,
        sim: simulator,
        pool,
        database,
        ..
    } = first;
    old_replica.stop().await;
    let second = TestApp::start_with(|c| {
        c.database_url = url.clone();
        c.plaid.base_url = sim.clone();
    })
    .await;
    let named = format!(
        "the credentials of connection {} open with no configured key: set the key that sealed \
         them in LINKSTATE_ENCRYPTION_KEY or LINKSTATE_ENCRYPTION_OLD_KEYS",
        connection.id
    );
    let refused = refresh(&second, &key, &connection.id).await.unwrap_err();
    common::assert_status(&refused, tonic::Code::FailedPrecondition, &named);
    let refused = second
        .connections()
        .await
        .delete_connection(authed(
            &key,
            proto::DeleteConnectionRequest {
                connection_id: connection.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    common::assert_status(&refused, tonic::Code::FailedPrecondition, &named);
    assert_eq!(
        common::connection(&second, &key, &connection.id).await,
        connection,
        "the connection is as it was"
    );

    // Plaid's news of the item is still taken; its aggregation fails for good, naming it.
    let body = serde_json::to_vec(&serde_json::json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": item.item_id,
        "environment": "sandbox",
    }))
    .unwrap();
    let (status, _) = common::post(&second, &body, Some(&simulator.sign_webhook(&body))).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let buried = format!(
        "jobs WHERE dead_at IS NOT NULL AND last_error LIKE '%credentials of connection {} open \
         with no configured key%'",
        connection.id
    );
    wait_until(|| async { linkstate_testing::count(&pool, &buried).await == 1 }).await;
    second.stop().await;
    drop((simulator, database));
}
