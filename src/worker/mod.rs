//! Background work: jobs claimed from the queue, run, and finished, retried or buried.

pub mod aggregate;
pub mod notice;
pub mod schedule;
pub mod webhook;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerSettings;
use crate::context::Context;
use crate::jobs::Job;
use crate::store::jobs::{self, Attempt, ClaimedJob};
use crate::store::leases;
use crate::store::{self, StoreError};

/// The longest backoff between attempts of a failing job.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often an idle worker looks for due jobs that no wake-up announced.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Attempts before a failing job is buried.
const MAX_ATTEMPTS: i32 = 8;

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Another worker holds the connection; try again shortly, it is nobody's fault.
    #[error("connection busy")]
    Busy,
    /// What the job needs is not there yet (a webhook about an item whose import has not
    /// committed); try again after this long, it is nobody's fault either.
    #[error("not yet")]
    NotYet(Duration),
    /// The provider's circuit is open: try again when it lets a call through. Not an attempt:
    /// nothing was tried.
    #[error("provider circuit open until {0}")]
    CircuitOpen(chrono::DateTime<chrono::Utc>),
    /// A failure that may pass (provider down, database gone).
    #[error("{0}")]
    Transient(String),
    /// A failure that will not pass by trying again.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(message) => JobError::Transient(message),
            // A concurrent writer took the key first: the next attempt sees its row.
            StoreError::Conflict(key) => JobError::Transient(format!("conflict on {key}")),
            other => JobError::Permanent(other.to_string()),
        }
    }
}

/// A worker: who it is (named in job leases) and how it runs.
#[derive(Clone, Debug)]
pub struct Runner {
    /// Names this worker in job leases.
    pub id: String,
    /// How much at once, how long a claim lasts, how long it may drain.
    pub settings: WorkerSettings,
}

impl Runner {
    fn lease(&self) -> Duration {
        self.settings.job_lease
    }

    /// On shutdown, how long running jobs may take to finish: the grace period, less what is
    /// kept for giving back the leases of the unfinished ones.
    fn drain(&self) -> Duration {
        self.settings.shutdown_grace.saturating_sub(RELEASE_MARGIN)
    }
}

/// Of the shutdown grace period, what is kept for giving back the leases of unfinished jobs.
const RELEASE_MARGIN: Duration = Duration::from_secs(2);

/// Runs jobs until `shutdown`, at most `concurrency` at once; then lets the running ones finish
/// within the drain time, and gives back the leases of those that did not.
pub async fn run(ctx: Context, settings: Runner, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(settings.settings.concurrency as usize));
    let mut running = JoinSet::new();
    let running_ids = RunningJobs::default();
    let heartbeat = tokio::spawn(keep_leases(
        ctx.clone(),
        settings.clone(),
        running_ids.clone(),
    ));
    while !shutdown.is_cancelled() {
        // Reap what finished, so the set holds only running jobs.
        while running.try_join_next().is_some() {}
        let free = slots.available_permits() as i32;
        let claimed = if free > 0 {
            claim(&ctx, &settings.id, settings.lease(), free).await
        } else {
            Vec::new()
        };
        let idle = claimed.is_empty();
        for job in claimed {
            let permit = slots.clone().acquire_owned().await.expect("semaphore open");
            let (ctx, settings) = (ctx.clone(), settings.clone());
            let running_ids = running_ids.clone();
            running.spawn(async move {
                let id = job.id;
                running_ids.insert(id);
                let finished = run_one(&ctx, &settings, job).await;
                running_ids.remove(id);
                // Free the slot before waking the loop, or it may wake to find none free and
                // sleep until its next poll.
                drop(permit);
                if finished {
                    ctx.wake_workers();
                }
            });
        }
        if idle {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = ctx.workers_woken() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
    drain(&ctx, &settings, running).await;
    heartbeat.abort();
}

/// The ids of the jobs this worker is running now.
#[derive(Clone, Default)]
struct RunningJobs(Arc<Mutex<HashSet<uuid::Uuid>>>);

impl RunningJobs {
    fn insert(&self, id: uuid::Uuid) {
        self.0.lock().expect("not poisoned").insert(id);
    }

    fn remove(&self, id: uuid::Uuid) {
        self.0.lock().expect("not poisoned").remove(&id);
    }

    fn ids(&self) -> Vec<uuid::Uuid> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .copied()
            .collect()
    }
}

/// Renews the leases of the running jobs, and of the connections they work on, three times per
/// lease: a job runs as long as it needs while this process lives, and is taken over one lease
/// after it dies. Only the jobs it knows it runs: a claim whose answer was lost to a failover
/// is not renewed, so it runs out and the job is claimed again.
async fn keep_leases(ctx: Context, settings: Runner, running: RunningJobs) {
    let mut ticks = tokio::time::interval((settings.lease() / 3).max(Duration::from_millis(10)));
    loop {
        ticks.tick().await;
        let ids = running.ids();
        let holders: Vec<String> = ids
            .iter()
            .map(|id| leases::holder(&settings.id, *id))
            .collect();
        let renewed = async {
            let mut conn = store::connect(ctx.pool()).await?;
            jobs::renew_leases(&mut conn, &settings.id, &ids, settings.lease()).await?;
            leases::renew_leases_of(&mut conn, &holders, settings.lease()).await
        };
        if let Err(error) = renewed.await {
            tracing::warn!(%error, "could not renew job leases");
        }
    }
}

/// Waits for running jobs until the drain time is up, then stops the rest and gives their
/// jobs and connection leases back, so that another replica takes them over at once instead of
/// when the leases run out.
async fn drain(ctx: &Context, settings: &Runner, mut running: JoinSet<()>) {
    let all_done = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.drain(), all_done)
        .await
        .is_ok()
    {
        return;
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
    let released = async {
        let mut conn = store::connect(ctx.pool()).await?;
        let jobs = jobs::release_all(&mut conn, &settings.id).await?;
        leases::release_leases_of(&mut conn, &settings.id).await?;
        Ok::<_, StoreError>(jobs)
    };
    match released.await {
        Ok(jobs) => tracing::info!(jobs, "stopped unfinished jobs and gave them back"),
        // Their leases run out and another replica takes them over then.
        Err(error) => tracing::warn!(%error, "could not give back unfinished jobs"),
    }
}

async fn claim(ctx: &Context, worker_id: &str, lease: Duration, limit: i32) -> Vec<ClaimedJob> {
    let claimed = async {
        let mut conn = store::connect(ctx.pool()).await?;
        jobs::claim(&mut conn, worker_id, lease, limit).await
    };
    claimed.await.unwrap_or_else(|error| {
        tracing::warn!(%error, "could not claim jobs");
        Vec::new()
    })
}

/// Runs one claimed job and records its outcome; true when it finished.
async fn run_one(ctx: &Context, settings: &Runner, claimed: ClaimedJob) -> bool {
    let worker_id = settings.id.as_str();
    // Connection leases are held per job: two jobs of this worker never share one.
    let holder = leases::holder(worker_id, claimed.id);
    let outcome = match serde_json::from_value::<Job>(claimed.payload.clone()) {
        Ok(Job::Aggregate(job)) => aggregate::run(ctx, &holder, settings.lease(), &job).await,
        Ok(Job::Webhook(job)) => webhook::run(ctx, &holder, settings.lease(), &job).await,
        Err(error) => Err(JobError::Permanent(format!("unreadable job: {error}"))),
    };
    let finished = async {
        let mut conn = store::connect(ctx.pool()).await?;
        match &outcome {
            Ok(()) => jobs::complete(&mut conn, claimed.id, worker_id).await,
            // Waiting for a connection another job holds, or for an import to commit, is
            // nobody's failure: not an attempt.
            Err(error @ (JobError::Busy | JobError::NotYet(_) | JobError::CircuitOpen(_))) => {
                let (delay, reason) = match error {
                    JobError::NotYet(wait) => (*wait, "not yet"),
                    JobError::CircuitOpen(until) => {
                        (after_circuit(*until), "provider circuit open")
                    }
                    _ => (Duration::from_secs(1), "busy"),
                };
                jobs::retry_later(
                    &mut conn,
                    claimed.id,
                    worker_id,
                    delay,
                    reason,
                    Attempt::NotCounted,
                )
                .await
            }
            Err(JobError::Transient(message)) if claimed.attempts < MAX_ATTEMPTS => {
                let delay = backoff(claimed.attempts);
                tracing::warn!(job = %claimed.id, kind = %claimed.kind, %message, ?delay, "job will be retried");
                jobs::retry_later(
                    &mut conn,
                    claimed.id,
                    worker_id,
                    delay,
                    message,
                    Attempt::Counted,
                )
                .await
            }
            Err(error) => {
                tracing::error!(job = %claimed.id, kind = %claimed.kind, %error, "job failed for good");
                jobs::bury(&mut conn, claimed.id, worker_id, &error.to_string()).await
            }
        }
    };
    if let Err(error) = finished.await {
        // The lease runs out and another worker takes the job over.
        tracing::warn!(job = %claimed.id, %error, "could not record the job's outcome");
    }
    let label = match &outcome {
        Ok(()) => "ok",
        Err(JobError::Busy) => "busy",
        Err(JobError::NotYet(_)) => "not_yet",
        Err(JobError::CircuitOpen(_)) => "circuit_open",
        Err(JobError::Transient(_)) => "transient",
        Err(JobError::Permanent(_)) => "permanent",
    };
    crate::metrics::count(&crate::metrics::METRICS.jobs, label);
    outcome.is_ok()
}

/// Exponential backoff with jitter: a random delay between half and all of 2s, 4s, 8s, ...
/// capped at five minutes, so that jobs failing together do not retry together.
fn backoff(attempt: i32) -> Duration {
    use rand::RngExt;
    let ceiling =
        Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 20) as u32)).min(MAX_BACKOFF);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}

/// How long a job held back by an open circuit waits: until the circuit lets a trial through,
/// plus up to a second of jitter, so that the jobs it held back do not all come at once.
fn after_circuit(until: chrono::DateTime<chrono::Utc>) -> Duration {
    use rand::RngExt;
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    wait + Duration::from_millis(rand::rng().random_range(0..=1000))
}
