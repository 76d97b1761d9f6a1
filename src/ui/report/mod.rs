//! `mailwave report`: what an operator hands on, the same content two ways: [`markdown`] for
//! terminals and tickets, [`html`] (one self-contained file, charts inline) for mail. Both read one
//! [`Report`], so they cannot say different things.

mod html;
mod md;
mod svg;

pub use html::CHARTS;
pub use html::html;
pub(crate) use md::markdown;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::analytics::{self, Analysis};
use crate::exchange::figures::{STALL_CAUSES, Side};
use crate::store::status::{StateCounts, Status};
use crate::store::{Attention, FailureReason, Result, RunRecord, Store};

/// Mailboxes listed per attention table (all are counted; `--format csv` lists every one).
pub(crate) const LISTED: usize = 1000;
/// Runs told, newest first.
const RUNS: usize = 5;

/// Mailboxes by a moment, in time order.
pub(crate) type Counts = Vec<(Timestamp, u64)>;

/// Everything a report says, read once.
pub(crate) struct Report {
    pub now: Timestamp,
    /// The plan's zone: windows and dates are shown in it.
    pub tz: TimeZone,
    pub source: String,
    /// Who holds the run lock, when a run is going.
    pub running: Option<String>,
    /// Lists and time series only show what changed since then; the standing figures are now.
    pub since: Option<Timestamp>,
    pub status: Status,
    pub attention: Attention,
    /// The operators' action commands in the period, newest first.
    pub actions: Vec<crate::store::actions::ActionGroup>,
    pub failures: Vec<FailureReason>,
    /// Cut-overs by hour, the whole history (the progress chart adds them up).
    pub cutovers: Vec<(Timestamp, u64)>,
    pub analysis: Analysis,
    /// The latest forecast's coming waves; none when nothing is left to move.
    pub forecast: Option<ForecastView>,
    /// How old the forecast is in words, and whether a run has gone since it was made (it then
    /// does not know what that run did).
    pub forecast_age: Option<(String, bool)>,
    /// When the latest forecast was made, if every wave it covers has opened since (it is then
    /// left out, and the reports say so).
    pub forecast_passed: Option<Timestamp>,
    pub runs: Vec<RunRecord>,
    /// Licence checks before cut-over, and the users still without one.
    pub licences: crate::store::notices::LicenceView,
    /// Notices to users by kind and status (empty when none were ever due).
    pub notices: Vec<(String, [u64; NOTICE_STATUSES.len()])>,
}

/// The statuses a notice ends in, as the reports count them.
pub(crate) const NOTICE_STATUSES: [&str; 5] = ["sent", "failed", "dropped", "uncertain", "pending"];

/// The part of a saved forecast the reports show.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ForecastView {
    pub made_at: Timestamp,
    pub basis: String,
    #[serde(default = "ready_target")]
    pub ready_target: f64,
    pub base: ScenarioView,
}

/// What forecasts saved before they stated their target held to.
fn ready_target() -> f64 {
    0.95
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScenarioView {
    pub waves: Vec<WaveView>,
    pub finish: Option<Timestamp>,
    pub at_risk: u64,
    pub without_a_wave: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaveView {
    pub wave: String,
    pub window: String,
    pub window_start: Timestamp,
    pub mailboxes: u64,
    pub ready_share: f64,
    pub miss: u64,
    pub rolls_to: Option<String>,
    pub risk: Option<String>,
}

/// The side a stall waits on, in words.
pub(crate) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Source => "source (on-premises)",
        Side::Target => "target (Exchange Online)",
        Side::Either => "either side",
    }
}

/// Started and not ended: a request exists and has neither completed nor failed.
pub(crate) fn in_progress(s: &StateCounts) -> u64 {
    s["submitted"] + s["syncing"] + s["synced"] + s["completing"]
}

pub(crate) fn cut_over(s: &StateCounts) -> u64 {
    s["completed"] + s["completed_with_warning"]
}

impl Report {
    pub(crate) fn gather(
        store: &Store,
        now: Timestamp,
        running: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<Report> {
        let tz = store
            .plan_timezone()?
            .and_then(|z| TimeZone::get(&z).ok())
            .unwrap_or(TimeZone::UTC);
        let status = store.status(now, None)?;
        // With nothing left to move a forecast forecasts nothing; a stored one only shows the
        // waves still to come.
        let left = status.totals["planned"] + in_progress(&status.totals);
        let mut forecast_passed = None;
        let forecast = store
            .latest_forecast()?
            .and_then(|(_, body)| serde_json::from_str::<ForecastView>(&body).ok())
            .filter(|_| left > 0)
            .map(|mut f| {
                f.base.waves.retain(|w| w.window_start > now);
                f.base.at_risk = f.base.waves.iter().filter(|w| w.risk.is_some()).count() as u64;
                f
            })
            .filter(|f| {
                let ahead = !f.base.waves.is_empty();
                if !ahead {
                    forecast_passed = Some(f.made_at);
                }
                ahead
            });
        let last_run = store.runs(None, 1)?.first().map(|r| r.started_at);
        let forecast_age = forecast.as_ref().map(|f| {
            (
                crate::format::age(now.duration_since(f.made_at)),
                last_run.is_some_and(|t| t > f.made_at),
            )
        });
        Ok(Report {
            now,
            tz,
            source: std::fs::canonicalize(store.path())
                .unwrap_or_else(|_| store.path().to_path_buf())
                .display()
                .to_string(),
            running: running.map(str::to_string),
            since,
            status,
            attention: store.attention_split(since, LISTED)?,
            actions: store.action_groups(since, LISTED)?,
            failures: store.failures_by_reason(since)?,
            cutovers: store.cutovers_by_hour(None)?,
            analysis: analytics::analyze(store, analytics::By::Wave, None)?,
            forecast,
            forecast_age,
            forecast_passed,
            runs: store.work_runs(since, RUNS)?,
            notices: notices_by_kind(store)?,
            licences: store.licence_view(LISTED)?,
        })
    }

    /// A moment in the plan's zone, as people read it: "Mon 4 Jan 2027 20:00 GMT".
    pub(crate) fn local(&self, t: Timestamp) -> String {
        crate::format::local(t, &self.tz)
    }

    /// Why there is no forecast to show, in the reports' words (when `forecast` is `None`).
    pub(crate) fn no_forecast(&self) -> String {
        if self.status.totals["planned"] + in_progress(&self.status.totals) == 0 {
            "No forecast: nothing is left to move.".into()
        } else if let Some(made) = self.forecast_passed {
            format!(
                "No forecast: every wave of the last one (made {}) has opened. Run `mailwave forecast` again.",
                self.local(made)
            )
        } else {
            "No forecast yet: run `mailwave forecast`.".into()
        }
    }

    /// When the forecast was made, with its age, and a word when a run has gone since:
    /// "Wed 6 Jan 2027 21:02 GMT, 2 days ago, before the last run (run `mailwave forecast` again)".
    pub(crate) fn forecast_made(&self) -> String {
        let (Some(f), Some((age, stale))) = (&self.forecast, &self.forecast_age) else {
            return String::new();
        };
        format!(
            "{}, {age} ago{}",
            self.local(f.made_at),
            if *stale {
                ", before the last run (run `mailwave forecast` again)"
            } else {
                ""
            }
        )
    }

    /// A date in the plan's zone: "4 Jan".
    pub(crate) fn day(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%-d %b").to_string()
    }

    /// The standing figures, label and value, as both formats head the report with them.
    pub(crate) fn headline(&self) -> Vec<(&'static str, String)> {
        let s = &self.status;
        let t = &s.totals;
        let done = cut_over(t);
        let pct = if s.mailboxes > 0 {
            100.0 * done as f64 / s.mailboxes as f64
        } else {
            0.0
        };
        let retrying = s.failures["transient"];
        let person: u64 = s.needs_person.values().sum();
        let th = crate::format::thousands;
        let mut h = vec![
            ("mailboxes planned", th(s.mailboxes)),
            ("cut over", format!("{} ({pct:.1}%)", th(done))),
            ("in progress (started)", th(in_progress(t))),
            ("not started", th(t["planned"])),
            ("need a person", th(person)),
            ("failed, retried by the run", th(retrying)),
            ("skipped", th(t["skipped"])),
        ];
        if self.analysis.total.moves > 0 {
            h.push((
                "data moved (measured)",
                format!("{:.0} GB", self.analysis.total.gb),
            ));
        }
        if let Some(n) = &s.next_wave {
            h.push(("next wave", format!("{} ({})", n.id, th(n.mailboxes))));
        }
        if let Some(f) = &self.forecast {
            let stale = self.forecast_age.as_ref().is_some_and(|a| a.1);
            h.push((
                if stale {
                    "forecast finish (made before the last run)"
                } else {
                    "forecast finish"
                },
                f.base.finish.map_or_else(|| "-".into(), |t| self.local(t)),
            ));
            h.push(("waves at risk", f.base.at_risk.to_string()));
        }
        h
    }

    /// Cumulative cut-overs the plan expects by the end of each window, and those done by each hour.
    pub(crate) fn progress(&self) -> (Counts, Counts) {
        let mut waves: Vec<(Timestamp, u64)> = self
            .status
            .waves
            .iter()
            .filter_map(|w| Some((w.window_end.parse::<Timestamp>().ok()?, w.total)))
            .collect();
        waves.sort();
        let mut sum = 0;
        let plan = waves
            .into_iter()
            .map(|(t, n)| {
                sum += n;
                (t, sum)
            })
            .collect();
        let mut sum = 0;
        let done = self
            .cutovers
            .iter()
            .map(|&(hour, n)| {
                sum += n;
                (hour + jiff::SignedDuration::from_hours(1), sum)
            })
            .collect();
        (plan, done)
    }

    /// GB copied per hour, averaged over buckets so a long history stays readable (an hour, six or
    /// a day each): each bucket's start, its GB/h, and the bucket's length in hours.
    pub(crate) fn throughput(&self) -> (Vec<(Timestamp, f64)>, i64) {
        let from = self.since.map(|t| t.as_second()).unwrap_or(i64::MIN);
        let hours: Vec<(i64, f64)> = self
            .analysis
            .copied_gb_by_hour
            .iter()
            .filter(|(h, _)| **h >= from)
            .map(|(h, gb)| (*h, *gb))
            .collect();
        let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
            return (Vec::new(), 1);
        };
        let span_h = (last.0 - first.0) / 3600 + 1;
        let bucket_h: i64 = if span_h <= 72 {
            1
        } else if span_h <= 336 {
            6
        } else {
            24
        };
        let mut out: Vec<(Timestamp, f64)> = Vec::new();
        let mut at = first.0 - first.0.rem_euclid(bucket_h * 3600);
        let mut i = 0;
        while at <= last.0 {
            let end = at + bucket_h * 3600;
            let mut gb = 0.0;
            while i < hours.len() && hours[i].0 < end {
                gb += hours[i].1;
                i += 1;
            }
            if let Ok(t) = Timestamp::from_second(at) {
                out.push((t, gb / bucket_h as f64));
            }
            at = end;
        }
        (out, bucket_h)
    }

    /// Stalled time by cause as a share of time in progress, largest first, with the side it
    /// waits on.
    pub(crate) fn stalls(&self) -> Vec<(&'static str, Side, f64)> {
        let mut v: Vec<_> = STALL_CAUSES
            .iter()
            .filter_map(|c| {
                let share = *self.analysis.total.stall_by_cause.get(c.name)?;
                (share > 0.0).then_some((c.name, c.side, share))
            })
            .collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// The licence findings in a phrase: "licensed 380, assigned 12, missing 3".
    pub(crate) fn licence_counts(&self) -> String {
        self.licences
            .by_status
            .iter()
            .map(|(s, n)| format!("{s} {}", crate::format::thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The period's action commands as rows: when, who, what, mailboxes, reason, outcome.
    pub(crate) fn action_rows(&self) -> Vec<[String; 6]> {
        let th = crate::format::thousands;
        self.actions
            .iter()
            .map(|a| {
                let mut what = a.kind.name().to_string();
                if let Some(w) = &a.target_wave {
                    what.push_str(&format!(" to {w}"));
                }
                if a.silent {
                    what.push_str(" (no notice)");
                }
                let mailboxes = if a.mailboxes == 1 {
                    a.first.clone()
                } else {
                    format!("{} ({} and others)", th(a.mailboxes), a.first)
                };
                let mut outcome = Vec::new();
                for (n, word) in [
                    (a.applied, "applied"),
                    (a.refused, "refused"),
                    (a.pending, "pending"),
                ] {
                    if n > 0 {
                        outcome.push(format!("{word} {}", th(n)));
                    }
                }
                let mut outcome = outcome.join(", ");
                if let Some(why) = &a.refusal {
                    outcome.push_str(&format!(" ({why})"));
                }
                [
                    self.local(a.at),
                    a.by.clone(),
                    what,
                    mailboxes,
                    a.reason.clone().unwrap_or_default(),
                    outcome,
                ]
            })
            .collect()
    }

    /// The runs in words, newest first.
    /// Each run in words; `escape` makes the words that came from outside (a fatal error's text)
    /// safe for the format (the words around them carry the format's own `**` and backticks).
    pub(crate) fn runs_in_words(&self, escape: fn(&str) -> String) -> Vec<String> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let head = format!("Run {} (`{}`), started {}", r.id, r.command, self.local(r.started_at));
                match (&r.ended_at, &r.outcome) {
                    (Some(end), outcome) => format!(
                        "{head}, ended {}: **{}**. {}",
                        self.local(*end),
                        outcome.as_deref().unwrap_or("without an outcome"),
                        r.summary
                            .as_deref()
                            .map(|s| run_in_words(s, escape))
                            .unwrap_or_default()
                    ),
                    (None, _) if i == 0 && self.running.is_some() => {
                        format!("{head}, **is going**.")
                    }
                    (None, _) => format!(
                        "{head}, **never finished**: it was killed or crashed; the next run resumed from its last checkpoint."
                    ),
                }
            })
            .collect()
    }
}

/// Notices by kind ("before:7d", "after", "correction"), counted by [`NOTICE_STATUSES`] (those
/// still being sent or retried count as pending).
fn notices_by_kind(store: &Store) -> Result<Vec<(String, [u64; NOTICE_STATUSES.len()])>> {
    let mut by: std::collections::BTreeMap<String, [u64; NOTICE_STATUSES.len()]> =
        Default::default();
    for c in store.notice_counts()? {
        let i = NOTICE_STATUSES
            .iter()
            .position(|s| *s == c.status)
            .unwrap_or(NOTICE_STATUSES.len() - 1);
        by.entry(c.kind).or_default()[i] += c.count;
    }
    Ok(by.into_iter().collect())
}

/// A run summary (JSON) in a sentence or two.
fn run_in_words(summary: &str, escape: fn(&str) -> String) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(summary) else {
        return String::new();
    };
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let th = crate::format::thousands;
    let mut s = format!(
        "It cut over {} mailbox(es), made {} API calls ({} answered 429) and left {} needing a person.",
        th(n("completed_this_run")),
        th(n("api_calls_total")),
        th(n("throttled")),
        th(n("attention"))
    );
    if n("figures_collected") > 0 {
        s.push_str(&format!(
            " It read the figures of {} move(s).",
            th(n("figures_collected"))
        ));
    }
    if let Some(n) = v.get("notices") {
        let k = |key: &str| n.get(key).and_then(|x| x.as_u64()).unwrap_or(0);
        s.push_str(&format!(
            " It sent {} notice(s) to users, {} correction(s) and {} re-confirmation(s) ({} failed, {} dropped as too late).",
            th(k("sent")),
            th(k("corrections")),
            th(k("reconfirmations")),
            th(k("failed")),
            th(k("dropped"))
        ));
    }
    if n("groups_split") > 0 {
        s.push_str(&format!(
            " It split {} delegation group(s) at a window's close: some members had cut over, the rest follow as soon as possible.",
            th(n("groups_split"))
        ));
    }
    if let Some(f) = v.get("fatal").and_then(|f| f.as_str()) {
        s.push_str(&format!(" It stopped because: {}.", escape(f)));
    }
    s
}
