//! Sending batches: ImportConnections through the generated client, with the server's
//! RESOURCE_EXHAUSTED and UNAVAILABLE backed off and retried (whole requests and single items)
//! rather than failing the lines.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use super::lines::{Item, LineHash};
use super::{Finished, Outcome};
use crate::api::grpc::status::code_name;
use crate::domain::input::clip;
use crate::proto;
use crate::proto::connection_service_client::ConnectionServiceClient;

/// Codes after which the same request may well succeed.
pub const RETRYABLE: [&str; 2] = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"];

/// How long one request may take: a batch of slow provider calls, with room to spare.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// One line to send.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Its number in the file.
    pub line: u64,
    /// Its hash.
    pub hash: LineHash,
    /// The item.
    pub item: Item,
}

impl Pending {
    fn finished(self, outcome: Outcome) -> Finished {
        let external_customer_id =
            Some(self.item.connection.external_customer_id).filter(|id| !id.is_empty());
        Finished {
            line: self.line,
            hash: self.hash,
            external_customer_id,
            outcome,
            from_earlier_run: false,
        }
    }

    /// A failure of this line.
    fn failed(&self, code: Code, message: &str) -> Outcome {
        Outcome::Failed {
            code: code_name(code).to_string(),
            message: self.redacted(message),
        }
    }

    /// A message to keep: short, and should it quote this line's credential, not that.
    fn redacted(&self, message: &str) -> String {
        let credential = self.item.credential.expose();
        if credential.len() >= 4 {
            clip(&message.replace(credential, "[credential]"))
        } else {
            clip(message)
        }
    }
}

/// The server refused the API key: no batch can succeed, so the run stops.
#[derive(Debug, thiserror::Error)]
#[error("the server refused the API key ({}): {}", code_name(.0.code()), .0.message())]
pub struct KeyRefused(pub Status);

/// Adds the tenant's key to every request.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Sends batches of one run.
#[derive(Clone)]
pub struct Sender {
    client: ConnectionServiceClient<InterceptedService<Channel, Bearer>>,
    validate_only: bool,
    backoff: ExponentialBuilder,
}

impl Sender {
    /// Connects to the server; an unreachable one is the caller's usage error.
    pub async fn connect(server: &str, api_key: &str, validate_only: bool) -> anyhow::Result<Self> {
        let bearer = MetadataValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| anyhow::anyhow!("LINKSTATE_API_KEY: not a valid API key"))?;
        let endpoint = Endpoint::from_shared(server.to_string())
            .map_err(|_| anyhow::anyhow!("LINKSTATE_SERVER: {server:?} is not a URL"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!("cannot reach the server at {server}: {error}"))?;
        Ok(Self {
            client: ConnectionServiceClient::with_interceptor(channel, Bearer(bearer)),
            validate_only,
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(15))
                .with_max_times(10)
                .with_jitter(),
        })
    }

    /// Sends one batch and answers each line's outcome. Retryable failures, of the whole
    /// request or of single items, are sent again after a backoff (or the delay the server's
    /// RetryInfo names); what still fails after the last try fails with its code.
    pub async fn send(&self, lines: Vec<Pending>) -> Result<Vec<Finished>, KeyRefused> {
        let mut finished = Vec::with_capacity(lines.len());
        let mut pending = lines;
        let mut delays = self.backoff.build();
        while !pending.is_empty() {
            let (retry, wait) = match self.call(&pending).await {
                Ok(response) => {
                    let answered = self.outcomes(&pending, response);
                    let mut retry = Vec::new();
                    for (line, outcome) in pending.drain(..).zip(answered) {
                        match outcome {
                            Outcome::Failed { ref code, .. }
                                if RETRYABLE.contains(&code.as_str()) =>
                            {
                                retry.push((line, outcome));
                            }
                            outcome => finished.push(line.finished(outcome)),
                        }
                    }
                    (retry, None)
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ) =>
                {
                    return Err(KeyRefused(status));
                }
                Err(status) if status.code() == Code::InvalidArgument && pending.len() > 1 => {
                    // Each line was checked as the server checks it; should a server check
                    // more, the lines go one at a time, so only the refused ones fail.
                    finished.extend(self.one_by_one(std::mem::take(&mut pending)).await?);
                    break;
                }
                Err(status) => {
                    let wait = status
                        .get_details_retry_info()
                        .and_then(|info| info.retry_delay);
                    let retry = pending
                        .drain(..)
                        .map(|line| {
                            let outcome = line.failed(status.code(), status.message());
                            (line, outcome)
                        })
                        .collect::<Vec<_>>();
                    if !RETRYABLE.contains(&code_name(status.code())) {
                        finished.extend(
                            retry
                                .into_iter()
                                .map(|(line, outcome)| line.finished(outcome)),
                        );
                        break;
                    }
                    (retry, wait)
                }
            };
            if retry.is_empty() {
                break;
            }
            match delays.next() {
                Some(delay) => {
                    tokio::time::sleep(wait.map_or(delay, |wait| wait.max(delay))).await;
                    pending = retry.into_iter().map(|(line, _)| line).collect();
                }
                None => {
                    finished.extend(
                        retry
                            .into_iter()
                            .map(|(line, outcome)| line.finished(outcome)),
                    );
                }
            }
        }
        Ok(finished)
    }

    async fn one_by_one(&self, lines: Vec<Pending>) -> Result<Vec<Finished>, KeyRefused> {
        let mut finished = Vec::with_capacity(lines.len());
        for line in lines {
            finished.extend(Box::pin(self.send(vec![line])).await?);
        }
        Ok(finished)
    }

    async fn call(&self, lines: &[Pending]) -> Result<proto::ImportConnectionsResponse, Status> {
        let request = proto::ImportConnectionsRequest {
            connections: lines
                .iter()
                .map(|line| line.item.connection.clone())
                .collect(),
            validate_only: self.validate_only,
        };
        let mut client = self.client.clone();
        Ok(client.import_connections(request).await?.into_inner())
    }

    /// Each line's outcome from the server's results, which come in request order.
    fn outcomes(
        &self,
        lines: &[Pending],
        response: proto::ImportConnectionsResponse,
    ) -> Vec<Outcome> {
        if response.results.len() != lines.len() {
            let message = format!(
                "the server answered {} results for {} items",
                response.results.len(),
                lines.len()
            );
            return lines
                .iter()
                .map(|line| line.failed(Code::Internal, &message))
                .collect();
        }
        lines
            .iter()
            .zip(response.results)
            .map(|(line, result)| self.outcome(line, result))
            .collect()
    }

    fn outcome(&self, line: &Pending, result: proto::ImportResult) -> Outcome {
        use proto::import_result::Result as Answer;
        match result.result {
            Some(Answer::Connection(_)) if self.validate_only => Outcome::Valid,
            Some(Answer::Connection(connection)) => match Uuid::parse_str(&connection.id) {
                Ok(connection_id) => Outcome::Imported {
                    connection_id,
                    already_imported: result.already_imported,
                },
                Err(_) => line.failed(Code::Internal, "the server answered no connection id"),
            },
            Some(Answer::Error(error)) => Outcome::Failed {
                message: line.redacted(&error.message),
                code: error.code,
            },
            None => line.failed(Code::Internal, "the server answered an empty result"),
        }
    }
}
