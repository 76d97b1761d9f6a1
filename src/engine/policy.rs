//! The run's decisions, as pure functions of what the service said and what the operator configured.
//! Nothing here does I/O or keeps state, so every rule is a row in a table test below; the
//! coordinator only looks up the answer and acts on it.

use jiff::{SignedDuration, Timestamp};

use crate::config::{DcsApproval, Window};
use crate::exchange::{Dcs, FailureKind, MoveStatus, ServiceError};
use crate::store::{FailureClass, State};

/// What a service status means for a mailbox's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The mailbox is in this state.
    To(State),
    /// The move failed: ask the statistics why before deciding.
    Failed,
    /// A status this version does not know: change nothing.
    Unknown,
}

pub fn follow(status: &MoveStatus) -> Follow {
    Follow::To(match status {
        MoveStatus::Queued => State::Submitted,
        MoveStatus::InProgress | MoveStatus::Retrying => State::Syncing,
        MoveStatus::Synced | MoveStatus::AutoSuspended => State::Synced,
        MoveStatus::Suspended => State::Held,
        MoveStatus::CompletionInProgress => State::Completing,
        MoveStatus::Completed => State::Completed,
        MoveStatus::CompletedWithWarning | MoveStatus::CompletedWithSkippedItems => {
            State::CompletedWithWarning
        }
        MoveStatus::Failed => return Follow::Failed,
        MoveStatus::Other(_) => return Follow::Unknown,
    })
}

/// Whether a verdict of the run's own (a permanent failure, a wait for approval) stands against what
/// a listing says. It stands while the service only keeps the move waiting; real progress (someone
/// resumed or approved it by hand) moves the mailbox on.
pub(crate) fn verdict_stands(current: State, class: Option<FailureClass>, listed: State) -> bool {
    current == State::Failed
        && class != Some(FailureClass::Transient)
        && matches!(listed, State::Synced | State::Submitted)
}

/// The failure class of a failed move.
pub(crate) fn failure_class(kind: FailureKind) -> FailureClass {
    match kind {
        FailureKind::Transient => FailureClass::Transient,
        FailureKind::Permanent => FailureClass::Permanent,
    }
}

/// What to do with a synced move, by its data-consistency grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DcsVerdict {
    /// Nothing to do: it completes when its cut-over comes.
    Proceed,
    /// Approve the skipped items (`Set-MoveRequest -SkippedItemApprovalTime`).
    Approve,
    /// Leave it for the operator to review and approve.
    AwaitApproval,
    /// It cannot complete (Poor).
    CannotComplete,
}

pub(crate) fn dcs_verdict(score: Option<Dcs>, setting: DcsApproval) -> DcsVerdict {
    match (score, setting) {
        (Some(Dcs::Investigate), DcsApproval::Investigate) => DcsVerdict::Approve,
        (Some(Dcs::Investigate), DcsApproval::GoodOnly | DcsApproval::Never) => {
            DcsVerdict::AwaitApproval
        }
        (Some(Dcs::Poor), _) => DcsVerdict::CannotComplete,
        (Some(Dcs::Perfect | Dcs::Good) | None, _) => DcsVerdict::Proceed,
    }
}

/// After a transient failure: resume it later, or give it to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    After(SignedDuration),
    GiveUp,
}

/// `resumed`: resumes so far. The wait doubles each time from `backoff`.
pub(crate) fn resume(resumed: u32, attempts: u32, backoff: SignedDuration) -> Resume {
    if resumed >= attempts {
        return Resume::GiveUp;
    }
    let factor = 1i64 << resumed.min(10);
    Resume::After(
        backoff
            .checked_mul(factor as i32)
            .unwrap_or(SignedDuration::MAX),
    )
}

/// Whether `now` falls in a daily local-time window (which may cross midnight) in `tz`.
pub(crate) fn in_local_window(window: Window, now: Timestamp, tz: &jiff::tz::TimeZone) -> bool {
    let t = now.to_zoned(tz.clone()).time();
    if window.crosses_midnight() {
        t >= window.start || t < window.end
    } else {
        t >= window.start && t < window.end
    }
}

/// What the answer to a `New-MoveRequest` settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The request exists now, made by this call.
    Made,
    /// The service already had a request for the mailbox (an earlier call of ours that lost its
    /// answer, or one made by hand): adopt it. The service never holds two for one mailbox.
    Adopt,
    /// The mailbox has already moved (a completed request exists).
    AlreadyMoved,
    /// The outcome is unknown (no answer, a 5xx, a timeout): the request may or may not exist.
    /// The mailbox alone waits for evidence; nothing else does.
    Uncertain,
    /// Nothing was done on the service (refused before acting, or never sent).
    NotMade,
    /// The service refused this mailbox for good.
    Refused,
}

pub fn created(answer: Result<(), &ServiceError>) -> Created {
    match answer {
        Ok(()) => Created::Made,
        Err(ServiceError::AlreadyExists {
            completed: false, ..
        }) => Created::Adopt,
        Err(ServiceError::AlreadyExists {
            completed: true, ..
        }) => Created::AlreadyMoved,
        Err(ServiceError::Transient { .. } | ServiceError::Throttled { .. }) => Created::Uncertain,
        Err(
            ServiceError::Auth { .. } | ServiceError::Permission { .. } | ServiceError::NotSent,
        ) => Created::NotMade,
        Err(
            ServiceError::NotFound { .. }
            | ServiceError::NotYetReplicated { .. }
            | ServiceError::BadRequest { .. }
            | ServiceError::RequestCompleting { .. }
            | ServiceError::Permanent { .. },
        ) => Created::Refused,
    }
}

/// An uncertain create is asked again (a new `New-MoveRequest`, whose answer is evidence either
/// way) this long after the attempt, unless a listing shows the request first.
pub(crate) const PROBE_AFTER: SignedDuration = SignedDuration::from_secs(10);

/// When an uncertain create, attempted at `attempted`, may be asked again.
pub(crate) fn probe_at(attempted: Timestamp, now: Timestamp) -> Timestamp {
    (attempted + PROBE_AFTER).max(now)
}

/// What the completer does with a mailbox of a wave whose window is about to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtClose {
    /// No request yet: move it to the next wave in the store only.
    MoveUnstarted,
    /// A request that has not started its cut-over: move it to the next wave on the service too
    /// (`Set-MoveRequest -BatchName -CompleteAfter`), so that it cannot cut over late.
    MoveRequest,
    /// Cutting over, done, or the operator's: leave it.
    Leave,
}

/// The wave a mailbox moves to when its window closes: the first whose window starts after `after`
/// (the closing one's start) and after `not_before`. By position in `starts`.
pub(crate) fn next_window(
    starts: impl Iterator<Item = Timestamp>,
    after: Timestamp,
    not_before: Timestamp,
) -> Option<usize> {
    starts
        .enumerate()
        .filter(|(_, s)| *s > after && *s > not_before)
        .min_by_key(|(_, s)| *s)
        .map(|(i, _)| i)
}

/// When the completer moves a wave's mailboxes not yet cutting over on to the next wave:
/// `run.cutover_margin` before the window ends, earlier by the time the calls for its `unready`
/// mailboxes take at the request rate.
pub fn close_time(
    window_end: Timestamp,
    margin: SignedDuration,
    unready: u64,
    requests_per_second: f64,
) -> Timestamp {
    let calls = unready as f64 / requests_per_second.max(1e-9);
    let sending = SignedDuration::from_secs_f64(calls.min(1e9));
    window_end
        .checked_sub(margin)
        .and_then(|t| t.checked_sub(sending))
        .unwrap_or(Timestamp::MIN)
}

/// A wave's window as the cut-over rule ([`cutover_window`]) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFacts {
    pub start: Timestamp,
    /// The last moment a mailbox may still be given this window: the completer moves whatever is
    /// not cutting over on to a later wave then (for a closed window it has passed).
    pub usable_until: Timestamp,
    /// It holds fewer mailboxes than its capacity.
    pub room: bool,
}

/// Why no window is left for a mailbox: it is held, with this reason, until an operator acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoWindow {
    NonePlanned,
    NoneWithRoom,
}

impl NoWindow {
    pub fn reason(self) -> &'static str {
        match self {
            NoWindow::NonePlanned => "no later wave is planned",
            NoWindow::NoneWithRoom => "no later wave has room",
        }
    }
}

/// The one rule for every path that may let a mailbox complete (creates, approvals, retries and
/// resumes, releases, reschedules, adoptions): before the call, its cut-over (batch and
/// CompleteAfter) goes into a window that is still ahead or open. That is `preferred` (its own
/// wave, or the one an operator sends it to) while it can still be given; else the earliest later
/// wave with room; else none, and the mailbox is held with the reason. The service never cuts a
/// move over before its CompleteAfter, and the completer moves on whatever has not started its
/// cut-over before a window closes, so nothing cuts over outside a window of the wave it then
/// belongs to, whatever the operator does. `wave(i)` describes wave `i` of `count`.
pub fn cutover_window(
    preferred: usize,
    count: usize,
    wave: impl Fn(usize) -> WindowFacts,
    now: Timestamp,
) -> Result<usize, NoWindow> {
    let own = wave(preferred);
    if now < own.usable_until {
        return Ok(preferred);
    }
    let mut later = false;
    let mut best: Option<(Timestamp, usize)> = None;
    for i in (0..count).filter(|&i| i != preferred) {
        let w = wave(i);
        if w.start <= own.start || now >= w.usable_until {
            continue;
        }
        later = true;
        if w.room && best.is_none_or(|(start, _)| w.start < start) {
            best = Some((w.start, i));
        }
    }
    match best {
        Some((_, i)) => Ok(i),
        None if later => Err(NoWindow::NoneWithRoom),
        None => Err(NoWindow::NonePlanned),
    }
}

/// How long the run waits before asking again about a request the service has not replicated
/// yet (a 404 within `REPLICATION_GRACE` of its create, which bounds the retries): briefly at
/// first, as replication usually takes seconds, then at most two minutes apart.
pub(crate) fn replication_wait(tries: u32) -> SignedDuration {
    const MOST: SignedDuration = SignedDuration::from_mins(2);
    SignedDuration::from_secs(5)
        .checked_mul(1i32 << tries.min(8))
        .map_or(MOST, |d| d.min(MOST))
}

/// Move requests a run keeps copying at once: `run.max_in_flight`, and at most twice the migration
/// endpoint's MaxConcurrentMigrations (what is over that only queues on the service).
pub fn in_flight_cap(max_in_flight: u64, max_concurrent_migrations: u32) -> u64 {
    max_in_flight
        .min(2 * max_concurrent_migrations as u64)
        .max(1)
}

pub(crate) fn at_close(state: State, class: Option<FailureClass>) -> AtClose {
    match state {
        State::Planned => AtClose::MoveUnstarted,
        State::Submitted | State::Syncing | State::Synced => AtClose::MoveRequest,
        // A transient failure will be resumed and must not cut over late; a permanent one or one
        // waiting for approval stays where it is, for the operator.
        State::Failed if class == Some(FailureClass::Transient) => AtClose::MoveRequest,
        _ => AtClose::Leave,
    }
}

/// What an operator action does to one mailbox, from where the mailbox stands. The action command
/// asks this before it records anything (a refusal is bad input), and the run asks it again when it
/// applies the action (the mailbox may have moved on meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStep {
    /// Only the store changes: the mailbox goes to this state (a reschedule may keep it).
    Store(State),
    /// The service first (see [`ActionCall`]); the store follows its answer.
    Call(ActionCall),
    /// Not now: a create about it is still without an answer.
    Later,
    Refuse(&'static str),
}

/// The service call an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionCall {
    /// Hold: `Set-MoveRequest -CompleteAfter` a year out. The move keeps copying (its incremental
    /// syncs keep it current) but cannot cut over.
    Hold,
    /// Release or reschedule: `Set-MoveRequest -BatchName -CompleteAfter` of the wave it goes to.
    Move,
    /// Skip: `Remove-MoveRequest`.
    Remove,
    /// Retry: `Resume-MoveRequest` (removed and created again when the service will not resume it).
    Resume,
    /// Approve: `Set-MoveRequest -SkippedItemApprovalTime` now.
    Approve,
}

/// `has_request`: a move request exists (or may) on the service; `in_doubt`: a create about the
/// mailbox has no answer yet.
pub fn action_step(
    kind: crate::store::actions::ActionKind,
    state: State,
    class: Option<FailureClass>,
    has_request: bool,
    in_doubt: bool,
    force: bool,
) -> ActionStep {
    use crate::store::actions::ActionKind::*;
    use ActionStep::*;
    match state {
        State::Completing => return Refuse("its cut-over has started"),
        State::Completed | State::CompletedWithWarning => return Refuse("it has already moved"),
        _ => {}
    }
    if in_doubt {
        return Later;
    }
    match kind {
        Hold => match state {
            State::Held => Refuse("it is already held"),
            State::Skipped => Refuse("it is skipped: release it first"),
            _ if has_request => Call(ActionCall::Hold),
            _ => Store(State::Held),
        },
        Release => match state {
            State::Held if has_request => Call(ActionCall::Move),
            State::Held | State::Skipped => Store(State::Planned),
            _ => Refuse("it is neither held nor skipped"),
        },
        Retry => match state {
            State::Failed if class == Some(FailureClass::Permanent) && !force => {
                Refuse("it failed permanently: add --force to try it again")
            }
            // Resuming a permanent failure fails the same way: a fresh request is the fix.
            State::Failed if has_request && class == Some(FailureClass::Permanent) => {
                Call(ActionCall::Remove)
            }
            State::Failed if has_request => Call(ActionCall::Resume),
            State::Failed => Store(State::Planned),
            _ => Refuse("it has not failed"),
        },
        Skip => match state {
            State::Skipped => Refuse("it is already skipped"),
            _ if has_request => Call(ActionCall::Remove),
            _ => Store(State::Skipped),
        },
        Reschedule => match state {
            State::Skipped => Refuse("it is skipped: release it first"),
            // A held mailbox stays held in its new wave (its batch moves; its cut-over stays
            // a year out until it is released).
            _ if has_request => Call(ActionCall::Move),
            _ => Store(state),
        },
        Approve => match state {
            State::Failed if class == Some(FailureClass::NeedsApproval) => {
                Call(ActionCall::Approve)
            }
            State::Synced => Call(ActionCall::Approve),
            _ => Refuse("nothing of it waits for approval"),
        },
    }
}

/// Whether a service answer shows the service is there (even a refusal is an answer); network
/// failures, timeouts and 5xx are not.
pub(crate) fn is_answer(result: Result<(), &ServiceError>) -> bool {
    !matches!(
        result,
        Err(ServiceError::Transient { .. } | ServiceError::NotSent)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_status_to_its_state() {
        let table = [
            ("Queued", Follow::To(State::Submitted)),
            ("InProgress", Follow::To(State::Syncing)),
            ("Retrying", Follow::To(State::Syncing)),
            ("Synced", Follow::To(State::Synced)),
            ("AutoSuspended", Follow::To(State::Synced)),
            ("Suspended", Follow::To(State::Held)),
            ("CompletionInProgress", Follow::To(State::Completing)),
            ("Completed", Follow::To(State::Completed)),
            (
                "CompletedWithWarning",
                Follow::To(State::CompletedWithWarning),
            ),
            (
                "CompletedWithSkippedItems",
                Follow::To(State::CompletedWithWarning),
            ),
            ("Failed", Follow::Failed),
            ("SomethingNew", Follow::Unknown),
        ];
        for (status, want) in table {
            assert_eq!(follow(&MoveStatus::parse(status)), want, "{status}");
        }
    }

    #[test]
    fn failure_types_to_classes() {
        assert_eq!(
            failure_class(FailureKind::Transient),
            FailureClass::Transient
        );
        assert_eq!(
            failure_class(FailureKind::Permanent),
            FailureClass::Permanent
        );
    }

    #[test]
    fn every_grade_and_setting_to_its_verdict() {
        use DcsApproval::*;
        use DcsVerdict::*;
        let table = [
            (None, Never, Proceed),
            (Some(Dcs::Perfect), Never, Proceed),
            (Some(Dcs::Good), Never, Proceed),
            (Some(Dcs::Good), Investigate, Proceed),
            (Some(Dcs::Investigate), Never, AwaitApproval),
            (Some(Dcs::Investigate), GoodOnly, AwaitApproval),
            (Some(Dcs::Investigate), Investigate, Approve),
            (Some(Dcs::Poor), Never, CannotComplete),
            (Some(Dcs::Poor), GoodOnly, CannotComplete),
            (Some(Dcs::Poor), Investigate, CannotComplete),
        ];
        for (score, setting, want) in table {
            assert_eq!(dcs_verdict(score, setting), want, "{score:?} {setting:?}");
        }
    }

    #[test]
    fn resumes_double_then_give_up() {
        let m = SignedDuration::from_mins;
        let table = [
            (0, 5, Resume::After(m(15))),
            (1, 5, Resume::After(m(30))),
            (4, 5, Resume::After(m(240))),
            (5, 5, Resume::GiveUp),
            (0, 0, Resume::GiveUp),
        ];
        for (resumed, attempts, want) in table {
            assert_eq!(
                resume(resumed, attempts, m(15)),
                want,
                "{resumed}/{attempts}"
            );
        }
        // A huge backoff saturates instead of overflowing.
        assert_eq!(
            resume(30, 40, SignedDuration::from_secs(i64::MAX / 4)),
            Resume::After(SignedDuration::MAX)
        );
    }

    #[test]
    fn local_windows_in_the_schedules_zone() {
        let night = Window::parse("18:00-08:00").unwrap();
        let day = Window::parse("09:00-17:00").unwrap();
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let table = [
            // 14:00 in New York is 19:00 in London.
            (night, "2027-01-05T19:00:00Z", &new_york, false),
            (night, "2027-01-05T19:00:00Z", &london, true),
            (night, "2027-01-05T02:00:00Z", &new_york, true), // 21:00
            (day, "2027-01-05T02:00:00Z", &new_york, false),
            (day, "2027-07-05T08:30:00Z", &london, true), // 09:30 BST
            (day, "2027-07-05T16:00:00Z", &london, false), // 17:00 BST: the end is outside
        ];
        for (window, at, tz, want) in table {
            assert_eq!(
                in_local_window(window, t(at), tz),
                want,
                "{window} {at} {}",
                tz.iana_name().unwrap_or("")
            );
        }
    }

    #[test]
    fn every_create_answer_to_what_it_settles() {
        let transient = ServiceError::Transient {
            status: 504,
            message: "gateway timeout".into(),
        };
        let table = [
            (Ok(()), Created::Made),
            (
                Err(ServiceError::AlreadyExists {
                    completed: false,
                    message: String::new(),
                }),
                Created::Adopt,
            ),
            (
                Err(ServiceError::AlreadyExists {
                    completed: true,
                    message: String::new(),
                }),
                Created::AlreadyMoved,
            ),
            (Err(transient), Created::Uncertain),
            (
                Err(ServiceError::Throttled {
                    retry_after: std::time::Duration::from_secs(1),
                }),
                Created::Uncertain,
            ),
            (
                Err(ServiceError::Auth {
                    message: String::new(),
                }),
                Created::NotMade,
            ),
            (
                Err(ServiceError::Permission {
                    cmdlet: "New-MoveRequest".into(),
                }),
                Created::NotMade,
            ),
            (Err(ServiceError::NotSent), Created::NotMade),
            (
                Err(ServiceError::NotFound {
                    message: String::new(),
                }),
                Created::Refused,
            ),
            (
                Err(ServiceError::BadRequest {
                    message: String::new(),
                }),
                Created::Refused,
            ),
            (
                Err(ServiceError::Permanent {
                    status: 409,
                    message: String::new(),
                }),
                Created::Refused,
            ),
        ];
        for (answer, want) in table {
            assert_eq!(created(answer.as_ref().map(|_| ())), want, "{answer:?}");
        }
    }

    #[test]
    fn an_uncertain_create_is_asked_again_after_a_short_wait_never_in_the_past() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            probe_at(t("2027-01-04T20:00:00Z"), t("2027-01-04T20:00:01Z")),
            t("2027-01-04T20:00:10Z")
        );
        assert_eq!(
            probe_at(t("2027-01-04T20:00:00Z"), t("2027-01-04T21:00:00Z")),
            t("2027-01-04T21:00:00Z")
        );
    }

    #[test]
    fn what_the_completer_does_at_a_windows_close() {
        use FailureClass::*;
        let table = [
            (State::Planned, None, AtClose::MoveUnstarted),
            (State::Submitted, None, AtClose::MoveRequest),
            (State::Syncing, None, AtClose::MoveRequest),
            (State::Synced, None, AtClose::MoveRequest),
            (State::Failed, Some(Transient), AtClose::MoveRequest),
            (State::Failed, Some(Permanent), AtClose::Leave),
            (State::Failed, Some(NeedsApproval), AtClose::Leave),
            (State::Completing, None, AtClose::Leave),
            (State::Completed, None, AtClose::Leave),
            (State::Held, None, AtClose::Leave),
            (State::Skipped, None, AtClose::Leave),
        ];
        for (state, class, want) in table {
            assert_eq!(at_close(state, class), want, "{state} {class:?}");
        }
    }

    #[test]
    fn a_mailbox_that_may_complete_gets_a_window_still_ahead_or_open() {
        use NoWindow::*;
        let t = |h: i64| {
            "2027-01-04T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(h)
        };
        // Four waves a day apart: their windows start at 20:00 and can be given until 05:30.
        let wave = |day: i64, room: bool| WindowFacts {
            start: t(24 * day + 20),
            usable_until: t(24 * day + 29) + SignedDuration::from_mins(30),
            room,
        };
        let closed = |day: i64| WindowFacts {
            usable_until: Timestamp::MIN,
            ..wave(day, true)
        };
        let estate = |w: [WindowFacts; 4]| w;
        let table = [
            // Its own window is ahead: it stays there, with room or without.
            (
                "ahead",
                estate([wave(0, false), wave(1, true), wave(2, true), wave(3, true)]),
                0,
                t(10),
                Ok(0),
            ),
            // Open (the cut-over may start now, inside it).
            (
                "open",
                estate([wave(0, true), wave(1, true), wave(2, true), wave(3, true)]),
                0,
                t(23),
                Ok(0),
            ),
            // Past the moment the completer moves mailboxes on: the next wave with room.
            (
                "closing",
                estate([wave(0, true), wave(1, true), wave(2, true), wave(3, true)]),
                0,
                t(29) + SignedDuration::from_mins(31),
                Ok(1),
            ),
            // Closed four days ago (the approve of issue 19): the first later window still ahead.
            (
                "closed days ago",
                estate([closed(0), closed(1), closed(2), wave(4, true)]),
                0,
                t(24 * 4 + 19),
                Ok(3),
            ),
            // The next one is full: the one after.
            (
                "next is full",
                estate([closed(0), wave(1, false), wave(2, true), wave(3, true)]),
                0,
                t(24 + 10),
                Ok(2),
            ),
            // A later wave that is open right now counts.
            (
                "next is open",
                estate([closed(0), wave(1, true), wave(2, true), wave(3, true)]),
                0,
                t(24 + 21),
                Ok(1),
            ),
            // An earlier wave never does, even one with room whose window could still be given.
            (
                "only earlier",
                estate([wave(0, true), wave(1, true), closed(2), closed(3)]),
                2,
                t(10),
                Err(NonePlanned),
            ),
            (
                "nothing later",
                estate([closed(0), closed(1), closed(2), closed(3)]),
                2,
                t(24 * 4),
                Err(NonePlanned),
            ),
            (
                "all full",
                estate([closed(0), wave(1, false), wave(2, false), wave(3, false)]),
                0,
                t(24 + 10),
                Err(NoneWithRoom),
            ),
            // An operator's target that closed meanwhile: the next with room after it.
            (
                "target closed",
                estate([wave(0, true), closed(1), wave(2, true), wave(3, true)]),
                1,
                t(24 * 2 + 1),
                Ok(2),
            ),
        ];
        for (what, waves, preferred, now, want) in table {
            assert_eq!(
                cutover_window(preferred, waves.len(), |i| waves[i], now),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn replication_is_waited_out_briefly_first_then_two_minutes_apart() {
        let s = SignedDuration::from_secs;
        let table = [
            (0, s(5)),
            (1, s(10)),
            (2, s(20)),
            (4, s(80)),
            (5, s(120)),
            (40, s(120)),
        ];
        for (tries, want) in table {
            assert_eq!(replication_wait(tries), want, "{tries}");
        }
    }

    #[test]
    fn the_in_flight_cap_follows_the_endpoint() {
        assert_eq!(in_flight_cap(2000, 100), 200);
        assert_eq!(in_flight_cap(150, 100), 150);
        assert_eq!(in_flight_cap(2000, 0), 1);
    }

    #[test]
    fn verdicts_stand_until_the_service_shows_progress() {
        use FailureClass::*;
        let table = [
            (State::Failed, Some(Permanent), State::Synced, true),
            (State::Failed, Some(NeedsApproval), State::Synced, true),
            (State::Failed, Some(NeedsApproval), State::Completing, false),
            (State::Failed, Some(Transient), State::Synced, false),
            (State::Synced, None, State::Synced, false),
        ];
        for (current, class, listed, want) in table {
            assert_eq!(verdict_stands(current, class, listed), want);
        }
    }

    #[test]
    fn every_action_from_every_state() {
        use crate::store::actions::ActionKind::{self, *};
        use ActionStep::*;
        use FailureClass::*;
        let s = |kind: ActionKind, state: State, class: Option<FailureClass>, req: bool| {
            action_step(kind, state, class, req, false, false)
        };
        let table = [
            (Hold, State::Planned, None, false, Store(State::Held)),
            (Hold, State::Submitted, None, true, Call(ActionCall::Hold)),
            (Hold, State::Synced, None, true, Call(ActionCall::Hold)),
            (
                Hold,
                State::Failed,
                Some(Transient),
                true,
                Call(ActionCall::Hold),
            ),
            (
                Hold,
                State::Completing,
                None,
                true,
                Refuse("its cut-over has started"),
            ),
            (
                Hold,
                State::Completed,
                None,
                true,
                Refuse("it has already moved"),
            ),
            (Hold, State::Held, None, true, Refuse("it is already held")),
            (
                Hold,
                State::Skipped,
                None,
                false,
                Refuse("it is skipped: release it first"),
            ),
            (Release, State::Held, None, true, Call(ActionCall::Move)),
            (Release, State::Held, None, false, Store(State::Planned)),
            (Release, State::Skipped, None, false, Store(State::Planned)),
            (
                Release,
                State::Syncing,
                None,
                true,
                Refuse("it is neither held nor skipped"),
            ),
            (
                Retry,
                State::Failed,
                Some(Transient),
                true,
                Call(ActionCall::Resume),
            ),
            (
                Retry,
                State::Failed,
                Some(NeedsApproval),
                true,
                Call(ActionCall::Resume),
            ),
            (
                Retry,
                State::Failed,
                Some(Permanent),
                true,
                Refuse("it failed permanently: add --force to try it again"),
            ),
            (
                Retry,
                State::Failed,
                Some(Transient),
                false,
                Store(State::Planned),
            ),
            (
                Retry,
                State::Synced,
                None,
                true,
                Refuse("it has not failed"),
            ),
            (Skip, State::Planned, None, false, Store(State::Skipped)),
            (Skip, State::Syncing, None, true, Call(ActionCall::Remove)),
            (Skip, State::Held, None, true, Call(ActionCall::Remove)),
            (
                Skip,
                State::Skipped,
                None,
                false,
                Refuse("it is already skipped"),
            ),
            (
                Skip,
                State::Completing,
                None,
                true,
                Refuse("its cut-over has started"),
            ),
            (
                Reschedule,
                State::Planned,
                None,
                false,
                Store(State::Planned),
            ),
            (
                Reschedule,
                State::Synced,
                None,
                true,
                Call(ActionCall::Move),
            ),
            (Reschedule, State::Held, None, true, Call(ActionCall::Move)),
            (Reschedule, State::Held, None, false, Store(State::Held)),
            (
                Reschedule,
                State::Skipped,
                None,
                false,
                Refuse("it is skipped: release it first"),
            ),
            (
                Approve,
                State::Failed,
                Some(NeedsApproval),
                true,
                Call(ActionCall::Approve),
            ),
            (
                Approve,
                State::Synced,
                None,
                true,
                Call(ActionCall::Approve),
            ),
            (
                Approve,
                State::Failed,
                Some(Permanent),
                true,
                Refuse("nothing of it waits for approval"),
            ),
        ];
        for (kind, state, class, req, want) in table {
            assert_eq!(
                s(kind, state, class, req),
                want,
                "{kind:?} {state} {class:?} {req}"
            );
        }
        assert_eq!(
            action_step(Retry, State::Failed, Some(Permanent), true, false, true),
            Call(ActionCall::Remove),
            "--force: a permanent failure is made afresh, not resumed"
        );
        assert_eq!(
            action_step(Hold, State::Planned, None, false, true, false),
            Later,
            "a create in doubt is settled first"
        );
    }

    #[test]
    fn what_counts_as_the_service_answering() {
        let table = [
            (Ok(()), true),
            (
                Err(ServiceError::NotFound {
                    message: String::new(),
                }),
                true,
            ),
            (
                Err(ServiceError::Throttled {
                    retry_after: std::time::Duration::from_secs(1),
                }),
                true,
            ),
            (
                Err(ServiceError::Transient {
                    status: 0,
                    message: "connection refused".into(),
                }),
                false,
            ),
            (
                Err(ServiceError::Transient {
                    status: 503,
                    message: String::new(),
                }),
                false,
            ),
            (Err(ServiceError::NotSent), false),
        ];
        for (answer, want) in table {
            assert_eq!(is_answer(answer.as_ref().map(|_| ())), want, "{answer:?}");
        }
    }
}
