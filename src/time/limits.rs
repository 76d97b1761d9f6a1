//! Request-rate limits on simulated time. governor's GCRA decides; our [`Clock`] tells it the time and
//! does the waiting, so limits hold the same on the real, scaled and paused clocks. (governor's own
//! `until_ready` sleeps on the wall clock, which a scaled or paused run must not.)

use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::clock::Clock;

/// Simulated time since the Unix epoch, as governor reads a clock.
#[derive(Debug, Clone, Copy)]
pub struct SimTime(pub Clock);

impl GovernorClock for SimTime {
    type Instant = Duration;
    fn now(&self) -> Duration {
        let ns = self.0.now().as_nanosecond().max(0) as u128;
        Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
    }
}

pub(crate) type Limiter = RateLimiter<NotKeyed, InMemoryState, SimTime, NoOpMiddleware<Duration>>;

/// `per_second` sustained (fractions allowed), `burst` at once.
pub(crate) fn limiter(clock: Clock, per_second: f64, burst: u32) -> Limiter {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-9));
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("non-zero period")
        .allow_burst(std::num::NonZeroU32::new(burst.max(1)).expect("non-zero"));
    RateLimiter::direct_with_clock(quota, SimTime(clock))
}

/// How long until the limiter lets one more request through (zero: now, and it is taken).
pub(crate) fn try_take(limiter: &Limiter, clock: Clock) -> Duration {
    match limiter.check() {
        Ok(()) => Duration::ZERO,
        Err(not_until) => not_until
            .wait_time_from(SimTime(clock).now())
            .max(Duration::from_millis(1)),
    }
}

/// Waits (on the clock) until the limiter lets one request through.
pub async fn acquire(limiter: &Limiter, clock: Clock) {
    loop {
        let wait = try_take(limiter, clock);
        if wait.is_zero() {
            return;
        }
        clock
            .sleep(jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_hold_on_simulated_time() {
        let clock = Clock::tokio("2027-01-04T00:00:00Z".parse().unwrap(), 1.0);
        let l = limiter(clock, 2.0, 4);
        let start = clock.now();
        for _ in 0..24 {
            acquire(&l, clock).await;
        }
        // 4 at once, then 20 more at 2 a second: 10 seconds.
        let took = clock.now().duration_since(start).as_secs_f64();
        assert!((9.9..10.6).contains(&took), "{took}");
        assert!(try_take(&l, clock) > Duration::ZERO);
    }
}
