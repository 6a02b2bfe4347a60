//! When connections are refreshed in the background: each keeps its own phase, drawn at random
//! within the first interval when it is made, so connections imported together are not all
//! refreshed in the same minute a day later.

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, RngExt};

/// When a new connection gets its first background refresh: at a random point of the first
/// `interval` after `now`, drawn from `rng`.
pub fn first_refresh(now: DateTime<Utc>, interval: Duration, rng: &mut impl Rng) -> DateTime<Utc> {
    let seconds = interval.num_seconds().max(1);
    now + Duration::seconds(rng.random_range(0..seconds))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn first_refreshes_spread_over_the_first_interval() {
        let now = Utc::now();
        let day = Duration::hours(24);
        let mut rng = StdRng::seed_from_u64(7);
        let drawn: Vec<_> = (0..1000)
            .map(|_| first_refresh(now, day, &mut rng))
            .collect();
        assert!(drawn.iter().all(|at| *at >= now && *at < now + day));
        let first_half = drawn
            .iter()
            .filter(|at| **at < now + Duration::hours(12))
            .count();
        assert!((400..600).contains(&first_half), "{first_half} of 1000");
    }

    #[test]
    fn an_interval_under_a_second_still_gives_a_time() {
        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(first_refresh(now, Duration::zero(), &mut rng), now);
    }
}
