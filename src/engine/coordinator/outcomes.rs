//! What each call's answer changes: the transitions it means, what to ask next, and the verdicts of
//! [`policy`](super::super::policy).

use jiff::Timestamp;

use super::super::jobs::{Answer, Outcome};
use super::super::policy::{self, Created, DcsVerdict};
use super::super::state::{Close, Guid, Target, Work, ms, parse_guid};
use super::{Coordinator, Endpoint, tr};
use crate::exchange::{
    EndpointLimits, MoveRequest, MoveService, MoveStatistics, MoveStatus, ServiceError,
};
use crate::store::{FailureClass, State, StoreError};

impl<S: MoveService> Coordinator<S> {
    pub(super) async fn handle(&mut self, outcome: Outcome) -> Result<(), StoreError> {
        let now = self.clock.now();
        let Outcome {
            mailbox,
            correlation,
            answer,
            action,
        } = outcome;
        let idx = mailbox.unwrap_or(u32::MAX);
        if let Some((action, _)) = action {
            return self
                .on_action_answer(idx, action, answer, correlation, now)
                .await;
        }
        match answer {
            Answer::Endpoint(result) => self.on_endpoint(result),
            Answer::Created { intent, result } => {
                self.on_created(idx, intent, correlation, result, now)
                    .await?
            }
            Answer::Listed {
                wave,
                filtered,
                result,
            } => self.on_listed(wave, filtered, result, now).await?,
            Answer::Got(result) => self.on_got(idx, result, now).await?,
            Answer::Stats(result) => {
                self.st.mailboxes[idx as usize].work = Work::Idle;
                match result {
                    Ok(stats) => self.on_statistics(idx, stats, now).await?,
                    Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
                    Err(e) => {
                        self.refused(&e);
                    }
                }
            }
            Answer::Figures(result) => {
                self.st.mailboxes[idx as usize].work = Work::Idle;
                match result {
                    Ok(stats) => self.record_figures(idx, stats.figures, now).await?,
                    Err(e) => {
                        self.counters.figures_missed += 1;
                        if !self.refused(&e) {
                            tracing::debug!(error = %e, "no figures for this move");
                        }
                    }
                }
            }
            Answer::Resumed { moved, result } => {
                self.on_resumed(idx, correlation, moved, result, now)
                    .await?
            }
            Answer::Approved { to, result } => self.on_approved(idx, to, result, now).await?,
            // Only actions remove requests.
            Answer::Removed(_) => self.st.mailboxes[idx as usize].work = Work::Idle,
            Answer::Rescheduled { to, result } => self.on_rescheduled(idx, to, result, now).await?,
        }
        Ok(())
    }

    fn on_endpoint(&mut self, result: Result<EndpointLimits, ServiceError>) {
        self.endpoint = Endpoint::Read;
        match result {
            Ok(limits) => {
                self.in_flight_cap =
                    policy::in_flight_cap(self.cfg.max_in_flight, limits.max_concurrent_migrations);
                tracing::info!(
                    max_concurrent_migrations = limits.max_concurrent_migrations,
                    in_flight_cap = self.in_flight_cap,
                    "migration endpoint read"
                );
            }
            Err(e) => {
                if !self.refused(&e) {
                    self.in_flight_cap = self.cfg.max_in_flight.min(200);
                    tracing::warn!(error = %e, cap = self.in_flight_cap, "could not read the migration endpoint; assuming its documented default");
                }
            }
        }
    }

    async fn on_created(
        &mut self,
        idx: u32,
        intent: i64,
        correlation: [u8; 16],
        result: Result<MoveRequest, ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.creating -= 1;
        self.st.mailboxes[idx as usize].work = Work::Idle;
        let open = self.st.open_creates.get(&idx).copied();
        debug_assert_eq!(open.map(|o| o.intent), Some(intent));
        let probe = open.is_some_and(|o| o.probe);
        let id = self.st.mailboxes[idx as usize].id;
        match policy::created(result.as_ref().map(|_| ())) {
            Created::Made => {
                let req = result.expect("made means Ok");
                let m = &mut self.st.mailboxes[idx as usize];
                m.guid = Guid::of(parse_guid(&req.exchange_guid));
                m.submitted_at = ms(now);
                let t = tr(id, State::Submitted, "submit")
                    .correlation(correlation)
                    .request_id(req.exchange_guid.clone());
                self.transition(idx, t, now).await?;
                self.resolve(idx, "created", now).await?;
                if probe {
                    self.counters.uncertain_settled += 1;
                }
            }
            Created::Adopt => {
                let message = result.err().map(|e| e.to_string()).unwrap_or_default();
                self.st.mailboxes[idx as usize].submitted_at = ms(now);
                let t = tr(id, State::Submitted, "adopt")
                    .correlation(correlation)
                    .detail(message);
                self.transition(idx, t, now).await?;
                self.resolve(idx, "adopted: the service already had a request", now)
                    .await?;
                // The request may be in another batch or cut-over (made by hand, or by an earlier
                // attempt for another wave).
                let made_for = open.filter(|o| o.probe).and_then(|o| o.made_for);
                if self.st.mailboxes[idx as usize].work == Work::Idle {
                    self.bring_into_wave(idx, made_for);
                }
                if probe {
                    self.counters.uncertain_settled += 1;
                }
            }
            Created::AlreadyMoved => {
                let t = tr(id, State::Submitted, "adopt").correlation(correlation);
                self.transition(idx, t, now).await?;
                let t = tr(id, State::Completed, "adopt")
                    .detail("already moved: the service holds a completed request");
                self.transition(idx, t, now).await?;
                self.resolve(idx, "adopted: already moved", now).await?;
            }
            Created::Uncertain => {
                let e = result.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(mailbox = %self.st.address(idx), error = %e, "create outcome unknown; this mailbox waits for evidence");
                self.wait_for_probe(idx, now, now);
                self.st.waves[self.st.mailboxes[idx as usize].wave as usize]
                    .poll_by(now + policy::PROBE_AFTER);
                self.unstarted_in_closed_wave(idx, now).await?;
            }
            Created::NotMade => {
                let e = result.err();
                let why = match &e {
                    Some(ServiceError::NotSent) => "not sent: the run is stopping",
                    _ => "not made: refused",
                };
                if let Some(e) = &e {
                    self.refused(e);
                }
                self.resolve(idx, why, now).await?;
                self.unstarted_in_closed_wave(idx, now).await?;
            }
            Created::Refused => {
                let e = result.err().map(|e| e.to_string()).unwrap_or_default();
                let t = tr(id, State::Failed, "submit")
                    .correlation(correlation)
                    .failure(FailureClass::Permanent, e);
                self.transition(idx, t, now).await?;
                self.resolve(idx, "refused", now).await?;
            }
        }
        let w = self.st.mailboxes[idx as usize].wave;
        if self.st.waves[w as usize].next_poll().is_none() {
            self.schedule_poll(w, now);
        }
        Ok(())
    }

    /// A create answered after its wave's window closed left the mailbox without a known request:
    /// it moves on like the other unstarted ones did at the close.
    pub(super) async fn unstarted_in_closed_wave(
        &mut self,
        idx: u32,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        if m.state == State::Planned && self.st.waves[m.wave as usize].close == Close::Done {
            let next = self.st.next_wave(m.wave, now + self.cfg.cutover_margin);
            self.move_unstarted(idx, next, now).await?;
        }
        Ok(())
    }

    async fn on_got(
        &mut self,
        idx: u32,
        result: Result<MoveRequest, ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.mailboxes[idx as usize].work = Work::Idle;
        match result {
            Ok(req) => {
                let w = self.st.mailboxes[idx as usize].wave;
                if req.batch_name != self.st.waves[w as usize].name {
                    self.st.reschedules.push_back((idx, Target::Wave(w)));
                    self.st.mailboxes[idx as usize].work = Work::Queued;
                }
                self.follow(idx, &req, "poll", now).await?;
            }
            Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
            Err(e) => {
                self.refused(&e);
            }
        }
        Ok(())
    }

    async fn on_resumed(
        &mut self,
        idx: u32,
        correlation: [u8; 16],
        moved: Option<Target>,
        result: Result<(), ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.mailboxes[idx as usize].work = Work::Idle;
        // Its wave follows the cut-over first (the Set-MoveRequest went through even if the
        // resume did not), so that nothing below sees it in a window it has left.
        if let Some(to) = moved {
            self.cutover_moved(idx, to, "resumed", now).await?;
        }
        match result {
            Ok(()) => {
                let id = self.st.mailboxes[idx as usize].id;
                if self.st.mailboxes[idx as usize].state == State::Failed {
                    let t = tr(id, State::Syncing, "resume").correlation(correlation);
                    self.transition(idx, t, now).await?;
                }
                let w = self.st.mailboxes[idx as usize].wave;
                self.schedule_poll(w, now);
            }
            Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
            Err(
                ServiceError::Transient { .. }
                | ServiceError::Throttled { .. }
                | ServiceError::NotYetReplicated { .. },
            ) => {
                // Not resumed, and no attempt spent: try again after the backoff.
                self.st.resumes.push(std::cmp::Reverse((
                    ms(now.saturating_add(self.cfg.resume_backoff).unwrap_or(now)),
                    idx,
                )));
                self.st.mailboxes[idx as usize].work = Work::Waiting;
            }
            Err(e) => {
                if !self.refused(&e) {
                    tracing::debug!(error = %e, "resume refused; the next listing will tell where it stands");
                }
            }
        }
        Ok(())
    }

    /// Keeps a move's figures for the analytics.
    pub(super) async fn record_figures(
        &mut self,
        idx: u32,
        figures: crate::exchange::figures::MoveFigures,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let row = crate::store::figures::FigureRow {
            mailbox_id: self.st.mailboxes[idx as usize].id,
            collected_at: ms(now),
            figures,
        };
        self.writer
            .submit(crate::store::writer::Command::Figures(Box::new(row)))
            .await?;
        self.counters.figures += 1;
        Ok(())
    }

    /// `Get-MoveRequestStatistics` of a move that failed or waits: why, and what to do.
    async fn on_statistics(
        &mut self,
        idx: u32,
        stats: MoveStatistics,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        let (id, state) = (m.id, m.state);
        match stats.request.status {
            MoveStatus::Failed => {
                // The answer that says why a move failed also says how it went: keep its figures.
                if self.cfg.collect_statistics.takes(id) {
                    self.record_figures(idx, stats.figures.clone(), now).await?;
                }
                let (class, message) = match &stats.failure {
                    Some(f) => (policy::failure_class(f.kind), f.describe()),
                    None => (FailureClass::Transient, stats.message.clone()),
                };
                if state != State::Failed {
                    if !state.can_become(State::Failed) {
                        return Ok(());
                    }
                    let t = tr(id, State::Failed, "poll").failure(class, message.clone());
                    self.transition(idx, t, now).await?;
                }
                self.after_failure(idx, class, &message, now).await?;
            }
            MoveStatus::Synced => {
                match policy::dcs_verdict(stats.data_consistency_score, self.cfg.dcs_approval) {
                    DcsVerdict::Proceed => {}
                    DcsVerdict::Approve => {
                        self.st.mailboxes[idx as usize].work = Work::Queued;
                        self.st.approvals.push_back(idx);
                    }
                    DcsVerdict::AwaitApproval => {
                        let score = stats.data_consistency_score.map(|d| d.name()).unwrap_or("");
                        let t = tr(id, State::Failed, "poll").failure(
                        FailureClass::NeedsApproval,
                        format!(
                            "data consistency score {score}: review the skipped items, then approve them \
                             (Set-MoveRequest -SkippedItemApprovalTime) or allow it with run.dcs_approval"
                        ),
                    );
                        self.transition(idx, t, now).await?;
                    }
                    DcsVerdict::CannotComplete => {
                        let t = tr(id, State::Failed, "poll").failure(
                            FailureClass::Permanent,
                            format!(
                                "data consistency score Poor: the move cannot complete. {}",
                                stats.message
                            ),
                        );
                        self.transition(idx, t, now).await?;
                    }
                }
            }
            _ => self.follow(idx, &stats.request, "poll", now).await?,
        }
        Ok(())
    }
}
