//! What a user is owed after their date changed: the one rule the notifier sends by and every
//! action command predicts with. A user is told a date by their latest notice ("before", a
//! correction or a re-confirmation). When their mailbox no longer moves on that date (held,
//! skipped, rescheduled, rolled to a later wave, failed for good), a correction becomes due
//! `notices.correction_lead` before the earlier of the told and the new date, or at once when less
//! remains, and goes only if the date still does not hold by then: a short hold released in time
//! tells nobody anything. A user told "a date we will confirm" whose mailbox moves again is sent a
//! re-confirmation with the new date at once.

use jiff::{SignedDuration, Timestamp};

/// The latest notice that told a user a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    /// Its row: a correction or re-confirmation answers it, at most once.
    pub id: i64,
    /// The window start it told; None: "a date we will confirm".
    pub start: Option<Timestamp>,
}

/// Where a mailbox stands, as its user would be told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It moves in a wave with this window.
    Moving { start: Timestamp, end: Timestamp },
    /// It moves on no date yet: held, skipped, failed for good.
    Off,
    /// It has moved: nothing is corrected any more.
    Done,
}

/// A correction or a re-confirmation, and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    pub kind: Kind,
    /// When it goes (at or before now: at once).
    pub at: Timestamp,
    /// The window start it tells; None: "a date we will confirm".
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Correction,
    Reconfirm,
}

impl Kind {
    /// The notice's kind in the store and its template's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Correction => "correction",
            Kind::Reconfirm => "reconfirm",
        }
    }
}

impl Told {
    /// From the store's form: a notice's id and the window start it told (Unix ms, 0 for none).
    pub fn of(id: i64, start_ms: i64) -> Told {
        Told {
            id,
            start: (start_ms > 0).then(|| crate::store::from_millis(start_ms)),
        }
    }
}

/// What the user of `owed` is owed now that their mailbox stands where the store says.
pub fn owed(
    owed: &crate::store::notices::Owed,
    lead: SignedDuration,
    now: Timestamp,
) -> Option<FollowUp> {
    let standing = if owed.off {
        Standing::Off
    } else {
        Standing::Moving {
            start: owed.window.0,
            end: owed.window.1,
        }
    };
    follow_up(Told::of(owed.told_id, owed.told_start), standing, lead, now)
}

/// What a user told `told` is owed when their mailbox stands at `standing`, if anything.
pub fn follow_up(
    told: Told,
    standing: Standing,
    lead: SignedDuration,
    now: Timestamp,
) -> Option<FollowUp> {
    match (told.start, standing) {
        (_, Standing::Done) => None,
        (Some(t), Standing::Moving { start, .. }) if start == t => None,
        (Some(t), Standing::Moving { start, .. }) => Some(FollowUp {
            kind: Kind::Correction,
            at: (t.min(start) - lead).max(now),
            to: Some(start),
        }),
        (Some(t), Standing::Off) => Some(FollowUp {
            kind: Kind::Correction,
            at: (t - lead).max(now),
            to: None,
        }),
        // Told "a date we will confirm": the new date goes at once, while it is still ahead.
        (None, Standing::Moving { start, end }) if end > now => Some(FollowUp {
            kind: Kind::Reconfirm,
            at: now,
            to: Some(start),
        }),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + h * 3600).unwrap()
    }

    #[test]
    fn corrections_wait_for_the_lead_and_reconfirmations_go_at_once() {
        let lead = SignedDuration::from_hours(24);
        let told = Told {
            id: 1,
            start: Some(t(100)),
        };
        let moving = |h: i64| Standing::Moving {
            start: t(h),
            end: t(h + 10),
        };
        // The told date holds: nothing.
        assert_eq!(follow_up(told, moving(100), lead, t(0)), None);
        assert_eq!(follow_up(told, Standing::Done, lead, t(0)), None);
        // Held: a day before the told date.
        let off = follow_up(told, Standing::Off, lead, t(0)).unwrap();
        assert_eq!((off.kind, off.at, off.to), (Kind::Correction, t(76), None));
        // Moved later: a day before the told date; earlier: a day before the new one.
        assert_eq!(follow_up(told, moving(200), lead, t(0)).unwrap().at, t(76));
        let earlier = follow_up(told, moving(50), lead, t(0)).unwrap();
        assert_eq!((earlier.at, earlier.to), (t(26), Some(t(50))));
        // Less than the lead left: at once.
        assert_eq!(
            follow_up(told, Standing::Off, lead, t(90)).unwrap().at,
            t(90)
        );
        // Told "a date we will confirm", moving again: re-confirmed now; still off: nothing.
        let unconfirmed = Told { id: 2, start: None };
        let again = follow_up(unconfirmed, moving(120), lead, t(10)).unwrap();
        assert_eq!(
            (again.kind, again.at, again.to),
            (Kind::Reconfirm, t(10), Some(t(120)))
        );
        assert_eq!(follow_up(unconfirmed, Standing::Off, lead, t(10)), None);
        // A window already over is not re-confirmed.
        assert_eq!(follow_up(unconfirmed, moving(0), lead, t(20)), None);
    }
}
