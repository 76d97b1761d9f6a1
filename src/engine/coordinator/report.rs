//! What the coordinator tells the outside: a [`Snapshot`] after every round, and the summary at the
//! end.

use jiff::{SignedDuration, Timestamp};

use super::super::summary::{RunOutcome, RunSummary, Snapshot, WaveProgress};
use super::{Coordinator, Due};
use crate::exchange::MoveService;
use crate::store::State;

/// Progress is published at most this often.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Waves shown with a bar of their own, at most.
const MAX_WAVE_BARS: usize = 4;

impl<S: MoveService> Coordinator<S> {
    /// Publishes progress: at most a few times a second (the reporter reads it every few
    /// seconds), and always when `force`.
    pub(super) fn publish(&mut self, now: Timestamp, (wake, due): (Timestamp, Due), force: bool) {
        if self.progress.is_none()
            || (!force && self.published.is_some_and(|t| t.elapsed() < PUBLISH_EVERY))
        {
            return;
        }
        self.published = Some(std::time::Instant::now());
        let Some(tx) = &self.progress else { return };
        let current = self
            .st
            .waves
            .iter()
            .filter(|w| w.in_scope && w.window_start <= now + SignedDuration::from_hours(24))
            .rfind(|w| w.active() > 0 || w.window_start <= now)
            .map(|w| w.name.clone());
        let waves_total = self.st.waves.iter().filter(|w| w.in_scope).count();
        let waves_done = self
            .st
            .waves
            .iter()
            .filter(|w| w.in_scope && w.count(State::Planned) == 0 && w.active() == 0)
            .count();
        let what = self.describe(due);
        let waves = self
            .st
            .waves
            .iter()
            .filter(|w| {
                w.in_scope
                    && w.prestage_start <= now
                    && (w.count(State::Planned) > 0 || w.active() > 0)
            })
            .take(MAX_WAVE_BARS)
            .map(|w| {
                let c = |s: State| w.count(s) as u64;
                let cut_over = c(State::Completed) + c(State::CompletedWithWarning);
                let synced = c(State::Synced) + c(State::Completing) + cut_over;
                WaveProgress {
                    name: w.name.clone(),
                    window_start: Some(w.window_start),
                    total: w.counts.iter().map(|&n| n as u64).sum(),
                    prestaged: synced + c(State::Submitted) + c(State::Syncing) + c(State::Failed),
                    synced,
                    cut_over,
                    failed: c(State::Failed),
                }
            })
            .collect();
        let _ = tx.send(Snapshot {
            now: Some(now),
            tz: Some(self.timezone.clone()),
            counts: self.st.counts,
            total: self.st.mailboxes.len() as u64,
            in_flight: self.st.in_flight(),
            uncertain: self.st.uncertain(),
            calls: self.exec.metrics.total_calls(),
            throttled: self
                .exec
                .metrics
                .throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            throttled_seconds: self.exec.gate.paused().as_secs_f64(),
            current_wave: current,
            waves_total,
            waves_done,
            health: self.exec.health.view(),
            waiting_for: what.map(|w| (w, wake)),
            waves,
            calls_by_cmdlet: self.exec.metrics.by_cmdlet(),
        });
    }

    fn describe(&self, due: Due) -> Option<String> {
        let name = |w: u32| &self.st.waves[w as usize].name;
        Some(match due {
            Due::Nothing => return None,
            Due::Until => "--until".into(),
            Due::Answer => "an answer from the service".into(),
            Due::CallsInFlight => "calls in flight".into(),
            Due::Listing(w) => format!("the next listing of {}", name(w)),
            Due::Prestage(w) => format!("pre-staging of {}", name(w)),
            Due::Close(w) => format!("the close of {}'s window", name(w)),
            Due::Resume => "a resume".into(),
            Due::Probe => "asking about a create in doubt".into(),
            Due::Replication => "a request to replicate".into(),
            Due::Actions => "a look for operator actions".into(),
        })
    }

    pub(super) fn summary(&self, outcome: RunOutcome, ended: Timestamp) -> RunSummary {
        let hours = ended.duration_since(self.started).as_secs_f64() / 3600.0;
        let total = self.exec.metrics.total_calls();
        let completed = self.counters.completed;
        let health = self.exec.health.view();
        RunSummary {
            fatal: outcome.reason().map(str::to_string),
            outcome: outcome.name().into(),
            started: self.started.to_string(),
            ended: ended.to_string(),
            simulated_hours: hours,
            mailboxes: self.st.mailboxes.len() as u64,
            states: self.st.counts_by_name(),
            completed_this_run: completed,
            completed_per_hour: if hours > 0.0 {
                completed as f64 / hours
            } else {
                0.0
            },
            rescheduled: self.counters.rescheduled,
            api_calls: self.exec.metrics.by_cmdlet(),
            api_calls_total: total,
            calls_per_completed_mailbox: (completed > 0).then(|| total as f64 / completed as f64),
            throttled: self
                .exec
                .metrics
                .throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            throttled_seconds: self.exec.gate.paused().as_secs_f64(),
            // Counted by the session from the store as the run ends: the view cannot tell a hold
            // of mailwave's from an operator's, nor knows the licences.
            attention: 0,
            uncertain_at_start: self.counters.uncertain_at_start,
            uncertain_settled: self.counters.uncertain_settled,
            calls_cut_off: self.counters.cut_off,
            figures_collected: self.counters.figures,
            figures_missed: self.counters.figures_missed,
            groups_split: self.counters.groups_split,
            split_groups: self.counters.split_groups.clone(),
            last_good_answer: health.last_good.map(|t| t.to_string()),
            notices: None,
            licences: None,
        }
    }
}
