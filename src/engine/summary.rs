//! What a run tells the outside: progress [`Snapshot`]s while it goes, [`Alert`]s when something
//! needs a person now, and the [`RunSummary`] at the end. The engine never prints; whoever runs it
//! decides how these are shown.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::health::HealthView;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every wave in scope is done (or waits for the operator).
    Finished,
    /// Stopped by a signal (Ctrl-C, SIGTERM).
    Stopped,
    /// `--until` passed.
    Until,
    /// `--once`: what was due is done.
    Once,
    /// An action command with no run going: its actions are applied.
    Actions,
    /// The run could not go on (credentials refused, the state database failed, ...).
    Fatal(String),
    /// The service gave no good answer for `run.unreachable_timeout` (or, with `--once`, none at all).
    Unreachable(String),
}

impl RunOutcome {
    /// The word stored in the database and shown in the summary.
    pub fn name(&self) -> &'static str {
        match self {
            RunOutcome::Finished => "finished",
            RunOutcome::Stopped => "stopped",
            RunOutcome::Until => "until",
            RunOutcome::Once => "once",
            RunOutcome::Actions => "actions",
            RunOutcome::Fatal(_) => "fatal",
            RunOutcome::Unreachable(_) => "unreachable",
        }
    }

    /// The reason, for the two outcomes that are failures.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RunOutcome::Fatal(r) | RunOutcome::Unreachable(r) => Some(r),
            _ => None,
        }
    }
}

/// Progress, for whoever shows it (progress bars, log lines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub now: Option<Timestamp>,
    /// The plan's zone, for the times a person reads.
    pub tz: Option<jiff::tz::TimeZone>,
    pub counts: [u64; 10],
    pub total: u64,
    pub in_flight: u64,
    /// Creates whose outcome is in doubt (waiting for evidence).
    pub(crate) uncertain: u64,
    pub calls: u64,
    pub throttled: u64,
    pub(crate) throttled_seconds: f64,
    pub current_wave: Option<String>,
    pub(crate) waves_total: usize,
    pub(crate) waves_done: usize,
    pub(crate) health: HealthView,
    /// What the run waits for next, and until when.
    pub(crate) waiting_for: Option<(String, Timestamp)>,
    /// The waves being worked now (pre-staging or cutting over), earliest window first.
    pub waves: Vec<WaveProgress>,
    /// API calls by cmdlet and outcome (ok, throttled, transient, ...).
    pub calls_by_cmdlet:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
}

/// One wave's progress, as the bars show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaveProgress {
    pub name: String,
    pub window_start: Option<Timestamp>,
    pub total: u64,
    /// Mailboxes with a move request (or past it).
    pub prestaged: u64,
    /// Copied and waiting for the window (or past it).
    pub synced: u64,
    pub cut_over: u64,
    pub failed: u64,
}

/// Something a person should hear about now, not in the morning.
#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    /// `notify.failure_threshold` mailboxes newly need a person (failed for good, waiting for
    /// approval, no licence, held with no wave left), by reason in words.
    NeedsPerson {
        mailboxes: u64,
        reasons: Vec<(String, u64)>,
    },
    /// The service has not answered for a while.
    Unreachable {
        since: Timestamp,
        failures: u64,
        last_error: String,
        giving_up_at: Timestamp,
    },
    /// It answers again.
    Reachable { after: SignedDuration },
    /// Licence assignment stopped for the run (seats ran out, the SKU is not subscribed).
    LicencesStopped { reason: String },
    /// A notice sender was rested for the run after repeated refusals.
    SenderRested { sender: String, reason: String },
}

impl Alert {
    /// The alert in words, times in `tz` (the plan's zone).
    pub fn text(&self, tz: &jiff::tz::TimeZone) -> String {
        let local = |t: &Timestamp| crate::format::local(*t, tz);
        match self {
            Alert::NeedsPerson { mailboxes, reasons } => format!(
                "mailwave: {mailboxes} more mailbox(es) need a person ({}); `mailwave report` lists them with the service's reason.",
                reasons
                    .iter()
                    .map(|(why, n)| format!("{n} {why}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Alert::Unreachable {
                since,
                failures,
                last_error,
                giving_up_at,
            } => format!(
                "mailwave: Exchange Online has not answered since {} ({failures} failures in a row; last: {last_error}). \
                 The run waits and retries; it gives up at {}.",
                local(since),
                local(giving_up_at)
            ),
            Alert::LicencesStopped { reason } => format!(
                "mailwave: licence assignment stopped: {reason}. Users without a licence are listed in `mailwave report`."
            ),
            Alert::SenderRested { sender, reason } => format!(
                "mailwave: notice sender {sender} is rested for this run after repeated refusals ({reason}); the other senders go on."
            ),
            Alert::Reachable { after } => format!(
                "mailwave: Exchange Online answers again after {:.0} minutes; the run goes on.",
                after.as_secs_f64() / 60.0
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunSummary {
    /// finished, stopped, until, once, fatal or unreachable.
    pub outcome: String,
    /// Why a fatal or unreachable run ended.
    pub fatal: Option<String>,
    pub started: String,
    pub ended: String,
    pub simulated_hours: f64,
    pub mailboxes: u64,
    pub states: BTreeMap<&'static str, u64>,
    pub(crate) completed_this_run: u64,
    pub(crate) completed_per_hour: f64,
    pub rescheduled: u64,
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub api_calls_total: u64,
    pub(crate) calls_per_completed_mailbox: Option<f64>,
    pub throttled: u64,
    pub(crate) throttled_seconds: f64,
    /// Mailboxes that need a person when the run ended ([`crate::store::attention`]).
    pub attention: u64,
    /// Creates whose outcome was in doubt at the start, and how many of them this run settled.
    pub uncertain_at_start: u64,
    pub(crate) uncertain_settled: u64,
    /// Calls cut off by the stop grace: their mailboxes are settled by the next run.
    pub(crate) calls_cut_off: u64,
    /// Move figures recorded this run (`run.collect_statistics`), and finished moves whose
    /// statistics could not be read.
    pub figures_collected: u64,
    pub figures_missed: u64,
    /// Delegation groups split at a window's close (some members had cut over; the rest follow as
    /// soon as possible), and the first few in words.
    pub groups_split: u64,
    pub split_groups: Vec<String>,
    /// When the service last gave a good answer.
    pub(crate) last_good_answer: Option<String>,
    /// The notices to users this run sent, dropped, ... (when `[notices]` is enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices: Option<super::notices::NoticeSummary>,
    /// The licence checks before cut-over (when `[licences] sku` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licences: Option<super::licences::LicenceSummary>,
}

impl RunSummary {
    /// A summary for a run that ended before the engine could count anything.
    pub(crate) fn failed_early(started: Timestamp, ended: Timestamp, reason: String) -> RunSummary {
        RunSummary {
            outcome: RunOutcome::Fatal(String::new()).name().into(),
            fatal: Some(reason),
            started: started.to_string(),
            ended: ended.to_string(),
            simulated_hours: 0.0,
            mailboxes: 0,
            states: BTreeMap::new(),
            completed_this_run: 0,
            completed_per_hour: 0.0,
            rescheduled: 0,
            api_calls: BTreeMap::new(),
            api_calls_total: 0,
            calls_per_completed_mailbox: None,
            throttled: 0,
            throttled_seconds: 0.0,
            attention: 0,
            uncertain_at_start: 0,
            uncertain_settled: 0,
            calls_cut_off: 0,
            figures_collected: 0,
            figures_missed: 0,
            groups_split: 0,
            split_groups: Vec::new(),
            last_good_answer: None,
            notices: None,
            licences: None,
        }
    }
}

/// The text of a webhook message (Teams and Slack both read `text`).
pub(crate) fn webhook_text(s: &RunSummary, attention_total: u64) -> String {
    let done = s.states.get("completed").copied().unwrap_or(0)
        + s.states.get("completed_with_warning").copied().unwrap_or(0);
    format!(
        "mailwave run {}: {done} of {} mailboxes cut over ({} this run), {attention_total} need a person, {} API calls, {} throttled.{}",
        s.outcome,
        s.mailboxes,
        s.completed_this_run,
        s.api_calls_total,
        s.throttled,
        s.fatal
            .as_deref()
            .map(|f| format!(" Reason: {f}"))
            .unwrap_or_default()
    )
}
