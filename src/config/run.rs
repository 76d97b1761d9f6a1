//! `[run]`: how hard and how often the engine works.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Window};

/// Whether the completer approves skipped items (Data Consistency Score) so a move can complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcsApproval {
    /// Never: any move that asks for approval waits for the operator.
    Never,
    /// Only moves graded Good; Investigate waits for the operator.
    GoodOnly,
    /// Good and Investigate.
    Investigate,
}

/// `[run]`: how hard and how often the engine works.
#[derive(Debug, Clone)]
pub struct Run {
    /// Moves submitted and still copying at once, at most (further capped by the endpoint's
    /// MaxConcurrentMigrations times two, read from the service).
    pub max_in_flight: u64,
    /// Exchange requests a second, sustained, and at once.
    pub requests_per_second: f64,
    pub burst: u32,
    /// API calls in flight at once.
    pub max_parallel_calls: usize,
    /// Resume-MoveRequest attempts for a transiently failed move before it is left to the operator.
    pub resume_attempts: u32,
    /// Wait before the first resume; doubles each attempt.
    pub resume_backoff: jiff::SignedDuration,
    pub dcs_approval: DcsApproval,
    /// How often a wave's batch is listed while it pre-stages, and around its cut-over.
    pub prestage_poll: jiff::SignedDuration,
    pub cutover_poll: jiff::SignedDuration,
    /// This long before a window ends, every mailbox of the wave not yet cutting over is moved to
    /// the next wave, so that no cut-over starts after the window.
    pub cutover_margin: jiff::SignedDuration,
    /// Restricts when move requests are created (local time); any time when unset.
    pub prestage_window: Option<Window>,
    /// How long in-flight calls may take to finish after a stop signal.
    pub stop_grace: std::time::Duration,
    /// With no good answer from the service for this long, the run gives up (exit 5).
    pub unreachable_timeout: jiff::SignedDuration,
    /// The longest one cmdlet or Graph call (or a listing page) may take, and the longest gap
    /// between two reads of an answer.
    pub call_timeout: std::time::Duration,
    /// How often a run looks for operator actions (it also looks at once when a command says so).
    pub action_poll: jiff::SignedDuration,
    /// Which finished moves get one `Get-MoveRequestStatistics` for the analytics.
    pub collect_statistics: Collect,
}

/// `run.collect_statistics`: `"all"`, `"sample:N%"` or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Collect {
    All,
    /// Per ten thousand mailboxes (so `sample:12.5%` is 1250).
    Sample(u32),
    None,
}

impl Collect {
    pub fn parse(s: &str) -> Result<Collect, String> {
        match s {
            "all" => Ok(Collect::All),
            "none" => Ok(Collect::None),
            _ => {
                let share = s
                    .strip_prefix("sample:")
                    .and_then(|r| r.strip_suffix('%'))
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|n| (0.0..=100.0).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{s:?} is not \"all\", \"none\" or \"sample:N%\" with N from 0 to 100"
                        )
                    })?;
                Ok(Collect::Sample((share * 100.0).round() as u32))
            }
        }
    }

    /// Whether the mailbox with this id is collected: the same mailboxes every run (a sample is
    /// chosen by a hash of the id, so a resumed run does not pick others).
    pub fn takes(self, mailbox_id: i64) -> bool {
        match self {
            Collect::All => true,
            Collect::None => false,
            Collect::Sample(per_10k) => {
                let h = (mailbox_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                (h % 10_000) < per_10k as u64
            }
        }
    }
}

impl Run {
    /// The HTTP policy of every client a run builds.
    pub fn http(&self) -> crate::http::Policy {
        crate::http::Policy {
            call: self.call_timeout,
            ..crate::http::Policy::default()
        }
    }
}

fn secs(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(n)
}

fn hours(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(n)
}

fn days(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(24 * n)
}

impl Default for Run {
    fn default() -> Self {
        Run {
            max_in_flight: 2_000,
            requests_per_second: 10.0,
            burst: 20,
            max_parallel_calls: 8,
            resume_attempts: 5,
            resume_backoff: jiff::SignedDuration::from_mins(15),
            dcs_approval: DcsApproval::GoodOnly,
            prestage_poll: jiff::SignedDuration::from_mins(30),
            cutover_poll: jiff::SignedDuration::from_mins(5),
            cutover_margin: jiff::SignedDuration::from_mins(30),
            prestage_window: None,
            stop_grace: std::time::Duration::from_secs(60),
            unreachable_timeout: jiff::SignedDuration::from_mins(15),
            // The HTTP policy's own default: one value whether or not a config was read.
            call_timeout: crate::http::Policy::default().call,
            action_poll: jiff::SignedDuration::from_secs(30),
            collect_statistics: Collect::All,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    max_in_flight: Option<Spanned<i64>>,
    requests_per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<i64>>,
    max_parallel_calls: Option<Spanned<i64>>,
    resume_attempts: Option<Spanned<i64>>,
    resume_backoff: Option<Spanned<String>>,
    dcs_approval: Option<Spanned<String>>,
    prestage_poll: Option<Spanned<String>>,
    cutover_poll: Option<Spanned<String>>,
    cutover_margin: Option<Spanned<String>>,
    prestage_window: Option<Spanned<String>>,
    stop_grace: Option<Spanned<String>>,
    unreachable_timeout: Option<Spanned<String>>,
    call_timeout: Option<Spanned<String>>,
    action_poll: Option<Spanned<String>>,
    collect_statistics: Option<Spanned<String>>,
}

impl Run {
    pub(super) fn from_raw(cx: &Ctx, r: RawRun) -> Result<Run, ConfigError> {
        let d = Run::default();
        let requests_per_second = match &r.requests_per_second {
            None => d.requests_per_second,
            // At least one request every 100 seconds: the run divides by it to know how long
            // a wave's moves take to send, and that must stay a time, not infinity.
            Some(v) if !(*v.get_ref() >= 0.01 && *v.get_ref() <= 10_000.0) => {
                return Err(cx.invalid(
                    v.span(),
                    "run.requests_per_second",
                    format!("must be from 0.01 to 10000, got {}", v.get_ref()),
                ));
            }
            Some(v) => *v.get_ref(),
        };
        let dcs_approval = match &r.dcs_approval {
            None => d.dcs_approval,
            Some(v) => match v.get_ref().as_str() {
                "never" => DcsApproval::Never,
                "good-only" => DcsApproval::GoodOnly,
                "investigate" => DcsApproval::Investigate,
                other => {
                    return Err(cx.invalid(
                        v.span(),
                        "run.dcs_approval",
                        format!("{other:?} is not never, good-only or investigate"),
                    ));
                }
            },
        };
        let prestage_window = match &r.prestage_window {
            None => None,
            Some(w) => Some(
                Window::parse(w.get_ref())
                    .map_err(|m| cx.invalid(w.span(), "run.prestage_window", m))?,
            ),
        };
        Ok(Run {
            max_in_flight: cx.bounded(
                &r.max_in_flight,
                "run.max_in_flight",
                d.max_in_flight,
                10_000_000,
            )?,
            requests_per_second,
            burst: cx.bounded(&r.burst, "run.burst", d.burst as u64, 100_000)? as u32,
            max_parallel_calls: cx.bounded(
                &r.max_parallel_calls,
                "run.max_parallel_calls",
                d.max_parallel_calls as u64,
                1_024,
            )? as usize,
            resume_attempts: match &r.resume_attempts {
                Some(v) if !(0..=100).contains(v.get_ref()) => {
                    return Err(cx.invalid(
                        v.span(),
                        "run.resume_attempts",
                        format!("must be from 0 to 100, got {}", v.get_ref()),
                    ));
                }
                Some(v) => *v.get_ref() as u32,
                None => d.resume_attempts,
            },
            resume_backoff: cx.duration(
                &r.resume_backoff,
                "run.resume_backoff",
                d.resume_backoff,
                (secs(1), days(7)),
            )?,
            dcs_approval,
            prestage_poll: cx.duration(
                &r.prestage_poll,
                "run.prestage_poll",
                d.prestage_poll,
                (secs(1), days(1)),
            )?,
            cutover_poll: cx.duration(
                &r.cutover_poll,
                "run.cutover_poll",
                d.cutover_poll,
                (secs(1), hours(6)),
            )?,
            cutover_margin: cx.duration(
                &r.cutover_margin,
                "run.cutover_margin",
                d.cutover_margin,
                (secs(1), hours(12)),
            )?,
            prestage_window,
            stop_grace: cx.real_duration(
                &r.stop_grace,
                "run.stop_grace",
                d.stop_grace,
                (secs(1), hours(1)),
            )?,
            unreachable_timeout: cx.duration(
                &r.unreachable_timeout,
                "run.unreachable_timeout",
                d.unreachable_timeout,
                (secs(5), days(7)),
            )?,
            call_timeout: cx.real_duration(
                &r.call_timeout,
                "run.call_timeout",
                d.call_timeout,
                (secs(1), jiff::SignedDuration::from_mins(15)),
            )?,
            action_poll: cx.duration(
                &r.action_poll,
                "run.action_poll",
                d.action_poll,
                (secs(1), hours(1)),
            )?,
            collect_statistics: match &r.collect_statistics {
                None => d.collect_statistics,
                Some(v) => Collect::parse(v.get_ref())
                    .map_err(|m| cx.invalid(v.span(), "run.collect_statistics", m))?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn run_section() {
        let c = parse("[run]\nrequests_per_second = 2.5\ncutover_margin = \"45m\"\ndcs_approval = \"investigate\"\n").unwrap();
        assert_eq!(c.run.requests_per_second, 2.5);
        assert_eq!(c.run.cutover_margin, jiff::SignedDuration::from_mins(45));
        assert_eq!(c.run.dcs_approval, DcsApproval::Investigate);
        let e = parse("[run]\ncutover_poll = \"soon\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 2, key, .. } if key == "run.cutover_poll"),
            "{e}"
        );
        let e = parse("[run]\ncollect_statistics = \"sample:150%\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 2, key, .. } if key == "run.collect_statistics"),
            "{e}"
        );
        let c = parse("[run]\ncollect_statistics = \"sample:10%\"\n").unwrap();
        assert_eq!(c.run.collect_statistics, Collect::Sample(1000));
        let taken = (1..=100_000)
            .filter(|&id| c.run.collect_statistics.takes(id))
            .count();
        assert!(
            (9_000..11_000).contains(&taken),
            "{taken} of 100000 sampled at 10%"
        );
        let e = parse("[run]\n\ndcs_approval = \"always\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 3, key, .. } if key == "run.dcs_approval"),
            "{e}"
        );
    }
}
