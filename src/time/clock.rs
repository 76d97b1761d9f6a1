//! The engine's and the simulator's only source of time. Nothing else calls the system clock or sleeps.
//!
//! A clock maps a reference instant to a simulated timeline at some speed:
//! - `real()`: the wall clock.
//! - `scaled(speed)`: the wall clock sped up (the demo; `sim serve --speed`). Two processes given the
//!   same [`ClockSpec`] agree on the time, which is how `mailwave run` and `mailwave sim serve` share
//!   one accelerated timeline in the crash test.
//! - `tokio(...)`: tokio's clock, which tests pause so that the runtime jumps over idle time and a
//!   month of waves runs in seconds.
//! - `held(speed)`: stands still until [`Clock::start`], then runs like `scaled` from that moment
//!   (`sim serve --hold-clock`: a rehearsal's setup costs no simulated time).

use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reference {
    /// Wall-clock time (`jiff::Timestamp::now()`), read at `real_origin`.
    Wall { real_origin: Timestamp },
    /// tokio's (pausable) clock, read at `instant_origin`.
    Tokio {
        instant_origin: tokio::time::Instant,
    },
    /// Wall-clock time from the moment it was started, and standing still before. Every copy of
    /// the clock shares the one start.
    Held {
        started: &'static std::sync::OnceLock<Timestamp>,
    },
    /// A held clock as a command that only reads the time sees it: it never starts.
    Frozen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    reference: Reference,
    sim_origin: Timestamp,
    speed: f64,
}

/// A clock that can be written down and handed to another process:
/// `real`, or `scaled:<speed>:<real origin, RFC 3339>:<simulated origin, RFC 3339>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSpec {
    pub speed: f64,
    pub real_origin: Timestamp,
    pub(crate) sim_origin: Timestamp,
}

/// The fastest a clock may run: a simulated year in about three seconds. Faster is no rehearsal,
/// and the scaled time must stay inside the calendar.
pub const MAX_SPEED: f64 = 10_000_000.0;
/// The slowest: a thousandth of real time.
pub const MIN_SPEED: f64 = 0.001;

/// A clock speed as an operator gives it (`--speed`, `MAILWAVE_CLOCK`), or why it is refused.
pub fn check_speed(speed: f64) -> Result<f64, String> {
    if (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        // 1e308 as written, not as three hundred digits.
        let got = if (1e-3..1e9).contains(&speed.abs()) {
            speed.to_string()
        } else {
            format!("{speed:e}")
        };
        Err(format!(
            "a clock speed must be from {MIN_SPEED} to {MAX_SPEED}, got {got}"
        ))
    }
}

impl FromStr for ClockSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<ClockSpec, String> {
        if s == "real" {
            let now = Timestamp::now();
            return Ok(ClockSpec {
                speed: 1.0,
                real_origin: now,
                sim_origin: now,
            });
        }
        let mut parts = s.splitn(4, ':');
        let bad =
            || format!("{s:?} is not a clock (real, or scaled:<speed>:<real origin>:<sim origin>)");
        if parts.next() != Some("scaled") {
            return Err(bad());
        }
        let speed: f64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let speed = check_speed(speed).map_err(|e| format!("{}: {e}", bad()))?;
        // RFC 3339 contains ':' itself, so the two origins are split on the 'Z' that ends the first.
        let rest = [parts.next(), parts.next()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(":");
        let (a, b) = rest.split_once("Z:").ok_or_else(bad)?;
        Ok(ClockSpec {
            speed,
            real_origin: format!("{a}Z").parse().map_err(|_| bad())?,
            sim_origin: b.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for ClockSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scaled:{}:{}:{}",
            self.speed, self.real_origin, self.sim_origin
        )
    }
}

/// The clock as `sim serve` hands it to a mailwave that follows it (`MAILWAVE_CLOCK=sim:<url>`):
/// the spec once it runs, or `held:<speed>:<simulated origin>` while it stands still.
pub fn shared_text(clock: &Clock) -> String {
    match clock.spec() {
        Some(spec) => spec.to_string(),
        None => format!("held:{}:{}", clock.speed, clock.sim_origin),
    }
}

/// Reads [`shared_text`]: the spec to follow, and whether the clock still stands still (then the
/// spec starts it now, which is right for a command that reads the time once).
pub fn read_shared(text: &str) -> Result<(ClockSpec, bool), String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("held:") {
        let bad = || format!("{text:?} is not a held clock (held:<speed>:<sim origin>)");
        let (speed, origin) = rest.split_once(':').ok_or_else(bad)?;
        return Ok((
            ClockSpec {
                speed: speed
                    .parse()
                    .ok()
                    .filter(|v: &f64| *v > 0.0)
                    .ok_or_else(bad)?,
                real_origin: Timestamp::now(),
                sim_origin: origin.parse().map_err(|_| bad())?,
            },
            true,
        ));
    }
    Ok((text.parse()?, false))
}

impl Clock {
    pub fn real() -> Clock {
        let now = Timestamp::now();
        Clock {
            reference: Reference::Wall { real_origin: now },
            sim_origin: now,
            speed: 1.0,
        }
    }

    /// The wall clock sped up `speed` times, starting at `sim_origin` now.
    pub fn scaled(speed: f64, sim_origin: Timestamp) -> Clock {
        Clock::from_spec(ClockSpec {
            speed,
            real_origin: Timestamp::now(),
            sim_origin,
        })
    }

    pub fn from_spec(spec: ClockSpec) -> Clock {
        Clock {
            reference: Reference::Wall {
                real_origin: spec.real_origin,
            },
            sim_origin: spec.sim_origin,
            speed: spec.speed,
        }
    }

    /// A clock that reads `sim_origin` until [`Clock::start`], then runs `speed` times faster than
    /// the wall clock. One per process (its start is kept for the life of the process).
    pub fn held(speed: f64, sim_origin: Timestamp) -> Clock {
        Clock {
            reference: Reference::Held {
                started: Box::leak(Box::new(std::sync::OnceLock::new())),
            },
            sim_origin,
            speed,
        }
    }

    /// A held clock seen from a command that does not start it: it reads `at` throughout.
    pub fn frozen(speed: f64, at: Timestamp) -> Clock {
        Clock {
            reference: Reference::Frozen,
            sim_origin: at,
            speed,
        }
    }

    /// Starts a held clock (every copy of it), once; other clocks are always running.
    pub fn start(&self) {
        if let Reference::Held { started } = self.reference {
            started.get_or_init(Timestamp::now);
        }
    }

    /// Whether a held clock has not been started yet.
    pub fn is_held(&self) -> bool {
        match self.reference {
            Reference::Held { started } => started.get().is_none(),
            Reference::Frozen => true,
            _ => false,
        }
    }

    /// tokio's clock (pause it in tests), starting at `sim_origin` now, running `speed` times faster.
    pub fn tokio(sim_origin: Timestamp, speed: f64) -> Clock {
        Clock {
            reference: Reference::Tokio {
                instant_origin: tokio::time::Instant::now(),
            },
            sim_origin,
            speed,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The spec another process needs to share this clock (wall-clock based clocks only, and a
    /// held one once started).
    pub fn spec(&self) -> Option<ClockSpec> {
        let real_origin = match self.reference {
            Reference::Wall { real_origin } => real_origin,
            Reference::Held { started } => *started.get()?,
            Reference::Tokio { .. } | Reference::Frozen => return None,
        };
        Some(ClockSpec {
            speed: self.speed,
            real_origin,
            sim_origin: self.sim_origin,
        })
    }

    /// Where a held clock stands still (its simulated origin).
    pub fn origin(&self) -> Timestamp {
        self.sim_origin
    }

    pub fn now(&self) -> Timestamp {
        let elapsed = match self.reference {
            Reference::Wall { real_origin } => Timestamp::now().duration_since(real_origin),
            Reference::Held { started } => match started.get() {
                Some(real_origin) => Timestamp::now().duration_since(*real_origin),
                None => SignedDuration::ZERO,
            },
            Reference::Frozen => SignedDuration::ZERO,
            Reference::Tokio { instant_origin } => {
                SignedDuration::try_from(tokio::time::Instant::now() - instant_origin)
                    .unwrap_or(SignedDuration::MAX)
            }
        };
        // Saturating: a clock made in code (tests, the demo) is not checked like a spec.
        let scaled = SignedDuration::try_from_secs_f64(elapsed.as_secs_f64() * self.speed)
            .unwrap_or(SignedDuration::MAX);
        self.sim_origin
            .checked_add(scaled)
            .unwrap_or(Timestamp::MAX)
    }

    /// How long a stretch of simulated time takes in the reference clock.
    pub(crate) fn real_duration(&self, simulated: SignedDuration) -> Duration {
        Duration::try_from_secs_f64((simulated.as_secs_f64() / self.speed).max(0.0))
            .unwrap_or(Duration::MAX)
    }

    pub async fn sleep(&self, simulated: SignedDuration) {
        tokio::time::sleep(self.real_duration(simulated)).await;
    }

    pub(crate) async fn sleep_until(&self, at: Timestamp) {
        let left = at.duration_since(self.now());
        if left.is_positive() {
            self.sleep(left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_clock_stands_still_until_started_and_every_copy_starts_with_it() {
        let origin: Timestamp = "2027-01-04T08:00:00Z".parse().unwrap();
        let clock = Clock::held(600.0, origin);
        let copy = clock;
        assert!(clock.is_held() && clock.spec().is_none());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(copy.now(), origin);
        clock.start();
        assert!(!copy.is_held());
        let spec = copy.spec().unwrap();
        assert_eq!((spec.speed, spec.sim_origin), (600.0, origin));
        std::thread::sleep(Duration::from_millis(20));
        assert!(copy.now() >= origin + SignedDuration::from_secs(12));
        // Started once: a second start changes nothing.
        clock.start();
        assert_eq!(clock.spec().unwrap().real_origin, spec.real_origin);
    }

    #[test]
    fn the_shared_text_round_trips_held_and_running() {
        let origin: Timestamp = "2027-01-04T08:00:00Z".parse().unwrap();
        let clock = Clock::held(600.0, origin);
        assert_eq!(shared_text(&clock), "held:600:2027-01-04T08:00:00Z");
        let (spec, held) = read_shared(&shared_text(&clock)).unwrap();
        assert!(held);
        assert_eq!((spec.speed, spec.sim_origin), (600.0, origin));
        clock.start();
        let (spec, held) = read_shared(&shared_text(&clock)).unwrap();
        assert!(!held);
        assert_eq!(Some(spec), clock.spec());
        assert!(read_shared("held:0:2027-01-04T08:00:00Z").is_err());
        assert!(read_shared("<html>").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn paused_clock_jumps_over_sleeps() {
        let origin: Timestamp = "2027-01-04T00:00:00Z".parse().unwrap();
        let clock = Clock::tokio(origin, 1.0);
        clock
            .sleep_until("2027-01-11T00:00:00Z".parse().unwrap())
            .await;
        let now = clock.now();
        assert!(now >= "2027-01-11T00:00:00Z".parse().unwrap());
        assert!(now < "2027-01-11T00:00:01Z".parse().unwrap());
    }

    #[test]
    fn spec_round_trips_and_two_clocks_agree() {
        let spec: ClockSpec = "scaled:600:2026-11-21T10:00:00Z:2027-01-04T18:00:00Z"
            .parse()
            .unwrap();
        assert_eq!(spec.speed, 600.0);
        assert_eq!(spec.to_string().parse::<ClockSpec>().unwrap(), spec);
        let (a, b) = (Clock::from_spec(spec), Clock::from_spec(spec));
        let gap = b.now().duration_since(a.now()).as_secs_f64().abs();
        assert!(
            gap < 60.0,
            "two processes with one spec agree to within a minute of sim time: {gap}"
        );
        assert!("scaled:0:x:y".parse::<ClockSpec>().is_err());
        for speed in ["1e308", "inf", "NaN", "-1", "0.0000001", "10000001"] {
            let e = format!("scaled:{speed}:2026-11-21T10:00:00Z:2027-01-04T18:00:00Z")
                .parse::<ClockSpec>()
                .unwrap_err();
            assert!(e.contains("from 0.001 to 10000000"), "{speed}: {e}");
        }
        assert!("fast".parse::<ClockSpec>().is_err());
    }

    #[test]
    fn scaled_durations() {
        let clock = Clock::scaled(3600.0, Timestamp::UNIX_EPOCH);
        assert_eq!(
            clock.real_duration(SignedDuration::from_hours(1)),
            Duration::from_secs(1)
        );
    }
}
