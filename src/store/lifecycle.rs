//! The mailbox lifecycle. This table is the only place that says which transitions are legal; every
//! write path in the store asks it, so an illegal transition is an error, never a silent overwrite.

use std::fmt;
use std::str::FromStr;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum State {
    Planned = 0,
    /// New-MoveRequest accepted; pre-staging with CompleteAfter = the wave's cut-over.
    Submitted = 1,
    Syncing = 2,
    /// Copied and waiting for cut-over.
    Synced = 3,
    Completing = 4,
    Completed = 5,
    CompletedWithWarning = 6,
    Failed = 7,
    /// Held by the operator.
    Held = 8,
    Skipped = 9,
}

pub(crate) const ALL_STATES: [State; 10] = [
    State::Planned,
    State::Submitted,
    State::Syncing,
    State::Synced,
    State::Completing,
    State::Completed,
    State::CompletedWithWarning,
    State::Failed,
    State::Held,
    State::Skipped,
];

impl State {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: i64) -> Option<State> {
        ALL_STATES.get(usize::try_from(code).ok()?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Submitted => "submitted",
            State::Syncing => "syncing",
            State::Synced => "synced",
            State::Completing => "completing",
            State::Completed => "completed",
            State::CompletedWithWarning => "completed_with_warning",
            State::Failed => "failed",
            State::Held => "held",
            State::Skipped => "skipped",
        }
    }

    /// Finished for good.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::CompletedWithWarning)
    }

    /// A move request exists (or may exist) on the service for this mailbox.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            State::Submitted | State::Syncing | State::Synced | State::Completing | State::Failed
        )
    }

    /// Whether `self -> to` is a legal transition.
    pub(crate) fn can_become(self, to: State) -> bool {
        use State::*;
        match self {
            Planned => matches!(to, Submitted | Held | Skipped | Failed),
            // Back to planned when reconciliation finds no request on the service.
            // Skipped when the operator has the request removed.
            Submitted => matches!(
                to,
                Planned
                    | Syncing
                    | Synced
                    | Completing
                    | Completed
                    | CompletedWithWarning
                    | Failed
                    | Held
                    | Skipped
            ),
            Syncing => matches!(
                to,
                Synced | Completing | Completed | CompletedWithWarning | Failed | Held | Skipped
            ),
            Synced => matches!(
                to,
                Syncing | Completing | Completed | CompletedWithWarning | Failed | Held | Skipped
            ),
            Completing => matches!(to, Synced | Completed | CompletedWithWarning | Failed),
            // Resumed, re-created, reset by the operator, or given up.
            Failed => matches!(
                to,
                Planned
                    | Submitted
                    | Syncing
                    | Synced
                    | Completing
                    | Completed
                    | CompletedWithWarning
                    | Held
                    | Skipped
            ),
            Held => matches!(
                to,
                Planned | Submitted | Syncing | Synced | Failed | Skipped
            ),
            Skipped => matches!(to, Planned),
            Completed | CompletedWithWarning => false,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        ALL_STATES
            .iter()
            .copied()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("{s:?} is not a mailbox state"))
    }
}

/// Why a mailbox failed, as the engine decides what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Worth resuming.
    Transient,
    /// Needs the operator; the service's message says why.
    Permanent,
    /// Waits for skipped-item approval (Data Consistency Score Investigate).
    NeedsApproval,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
            FailureClass::NeedsApproval => "needs_approval",
        }
    }

    pub fn from_name(s: &str) -> Option<FailureClass> {
        [
            FailureClass::Transient,
            FailureClass::Permanent,
            FailureClass::NeedsApproval,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(State::from_code(s.code() as i64), Some(s));
            assert_eq!(s.name().parse::<State>().unwrap(), s);
        }
        assert_eq!(State::from_code(10), None);
    }

    #[test]
    fn terminal_states_go_nowhere_and_nothing_skips_submission() {
        for to in ALL_STATES {
            assert!(!State::Completed.can_become(to));
            assert!(!State::CompletedWithWarning.can_become(to));
        }
        // A planned mailbox cannot be synced or completed without a move request.
        for to in [
            State::Syncing,
            State::Synced,
            State::Completing,
            State::Completed,
        ] {
            assert!(!State::Planned.can_become(to), "{to}");
        }
        assert!(State::Planned.can_become(State::Submitted));
        assert!(State::Failed.can_become(State::Submitted));
        assert!(!State::Skipped.can_become(State::Submitted));
    }

    #[test]
    fn the_happy_path_is_legal() {
        let path = [
            State::Planned,
            State::Submitted,
            State::Syncing,
            State::Synced,
            State::Completing,
            State::Completed,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
    }
}
