//! One event's delivery to one webhook profile: how an attempt turned out, and what follows
//! from it (Meld's retry schedule).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ids::{DeliveryId, EventId, ProfileId};

meld_name_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// Not attempted yet.
        Pending,
        /// An attempt was answered 2xx.
        Succeeded,
        /// Attempted and failed; another attempt is due.
        Retrying,
        /// Given up, or stopped with its profile.
        Failed,
    }
}

/// How one attempt turned out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with this HTTP status; `retry_after` as it asked on a 429 or 503.
    Answered {
        /// The status.
        status: u16,
        /// What `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// No answer within the attempt's timeout.
    Timeout,
    /// No connection could be made.
    CouldNotConnect,
    /// The endpoint's address is not public (checked after DNS, at each attempt): not sent.
    RefusedAddress,
}

impl Outcome {
    /// Whether the endpoint took the event.
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Answered { status, .. } if (200..300).contains(status))
    }

    /// The attempt's error as recorded and sent as `Meld-Retry-Reason`; None on success.
    pub fn error(&self) -> Option<String> {
        match self {
            _ if self.succeeded() => None,
            Outcome::Answered { status, .. } => Some(format!("HTTP error: {status}")),
            Outcome::Timeout => Some("Timeout".into()),
            Outcome::CouldNotConnect => Some("Could not connect".into()),
            // The contract's three reasons: a refused address is a connection not made (the
            // metrics and the log tell it apart).
            Outcome::RefusedAddress => Some("Could not connect".into()),
        }
    }

    /// The HTTP status answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The retry schedule (`LINKSTATE_DELIVERY_RETRY_BASE`, `_RETRY_MAX`, `_GIVE_UP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; each later wait doubles.
    pub base: Duration,
    /// The longest wait, also the most a `Retry-After` is honoured for.
    pub max: Duration,
    /// How long after the first attempt retries go on.
    pub give_up: Duration,
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Done: the endpoint took it.
    Succeeded,
    /// Try again then.
    RetryAt(DateTime<Utc>),
    /// Given up: the next retry would come after the give-up time.
    Failed,
    /// The endpoint is gone (410): the profile is disabled and its deliveries stop.
    EndpointGone,
}

/// The share of a wait added at random at most, so that retries of many deliveries spread.
const JITTER: f64 = 0.1;

/// What follows attempt number `attempt` (1 for the first) of a round that began at
/// `first_attempted_at`. `jitter` is a random number in [0, 1).
pub fn next(
    policy: &RetryPolicy,
    outcome: &Outcome,
    attempt: u32,
    first_attempted_at: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Next {
    if outcome.succeeded() {
        return Next::Succeeded;
    }
    let wait = match outcome {
        Outcome::Answered { status: 410, .. } => return Next::EndpointGone,
        Outcome::Answered {
            status: 429 | 503,
            retry_after: Some(asked),
        } => (*asked).min(policy.max),
        _ => backoff(policy, attempt)
            .mul_f64(1.0 + JITTER * jitter.clamp(0.0, 1.0))
            .min(policy.max),
    };
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    let give_up_at = first_attempted_at
        + chrono::Duration::from_std(policy.give_up).unwrap_or(chrono::Duration::MAX);
    if at > give_up_at {
        Next::Failed
    } else {
        Next::RetryAt(at)
    }
}

/// The wait after attempt `attempt`: `base`, doubling each time, at most `max`.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    policy
        .base
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(policy.max)
        .min(policy.max)
}

/// Reads a `Retry-After` value: seconds, or an HTTP date (as a wait from `now`).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// One attempt as recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// When it was sent.
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status answered, if one was.
    pub response_status: Option<u16>,
    /// How long it took.
    pub duration_ms: u64,
    /// What went wrong; None on success.
    pub error: Option<String>,
    /// The start of the answer's body.
    #[serde(default)]
    pub response_body: String,
}

/// One event's delivery to one profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The profile.
    pub profile_id: ProfileId,
    /// The event (for a test webhook, the id it was sent with).
    pub event_id: EventId,
    /// The event's type, or `WEBHOOK_TEST`.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The event type of a test webhook.
pub const WEBHOOK_TEST: &str = "WEBHOOK_TEST";

/// Which events a redelivery sends again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// These events.
    Events(Vec<EventId>),
    /// The profile's events written in `[since, until)`.
    Range {
        /// From.
        since: DateTime<Utc>,
        /// Until, excluded.
        until: DateTime<Utc>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(60),
        max: Duration::from_secs(3600),
        give_up: Duration::from_secs(72 * 3600),
    };

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn http(status: u16) -> Outcome {
        Outcome::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn meld_schedule_one_minute_doubling_to_an_hour() {
        let waits: Vec<i64> = (1..=9)
            .map(
                |n| match next(&POLICY, &Outcome::Timeout, n, at(0), at(0), 0.0) {
                    Next::RetryAt(t) => (t - at(0)).num_seconds(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let Next::RetryAt(t) = next(&POLICY, &http(500), 1, at(0), at(0), 0.999) else {
            panic!()
        };
        let waited = (t - at(0)).num_milliseconds();
        assert!((60_000..66_000).contains(&waited), "{waited}");
    }

    #[test]
    fn jitter_never_takes_a_wait_past_the_max() {
        let Next::RetryAt(t) = next(&POLICY, &http(500), 12, at(0), at(0), 0.999) else {
            panic!()
        };
        assert_eq!(t - at(0), chrono::Duration::hours(1));
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            next(&POLICY, &http(204), 1, at(0), at(0), 0.0),
            Next::Succeeded
        );
        assert_eq!(
            next(&POLICY, &http(410), 1, at(0), at(0), 0.0),
            Next::EndpointGone
        );
        let asked = Outcome::Answered {
            status: 503,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            next(&POLICY, &asked, 1, at(0), at(0), 0.5),
            Next::RetryAt(at(7))
        );
        let too_long = Outcome::Answered {
            status: 429,
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(
            next(&POLICY, &too_long, 1, at(0), at(0), 0.0),
            Next::RetryAt(at(3600))
        );
        // 72 h after the first attempt, the next hourly retry would be too late.
        let late = at(72 * 3600 - 1800);
        assert_eq!(
            next(&POLICY, &http(500), 40, at(0), late, 0.0),
            Next::Failed
        );
    }

    #[test]
    fn errors_as_meld_names_them() {
        assert_eq!(http(503).error().as_deref(), Some("HTTP error: 503"));
        assert_eq!(Outcome::Timeout.error().as_deref(), Some("Timeout"));
        assert_eq!(
            Outcome::CouldNotConnect.error().as_deref(),
            Some("Could not connect")
        );
        assert_eq!(http(200).error(), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("30", at(0)), Some(Duration::from_secs(30)));
        let date = at(90).to_rfc2822();
        assert_eq!(retry_after(&date, at(0)), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("soon", at(0)), None);
    }
}
