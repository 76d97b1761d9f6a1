//! The notices' bookkeeping (`notices` table): what is due, what went, from whom, and what was
//! dropped. A row is written before the call that sends it and updated after, so that a crash can
//! lose a notice's outcome but never send it twice.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, from_millis, millis};

/// Mailboxes moving in their wave (a transient failure is retried, a skipped-items approval may
/// come): a "before" notice goes to these.
pub(super) const LIVE: &str = "(s.state IN (0, 1, 2, 3) OR (s.state = 7 AND s.failure_class IN ('transient', 'needs_approval')))";

/// Mailboxes that will not move on any date yet: held, skipped, or failed for good.
const OFF: &str =
    "(s.state IN (8, 9) OR (s.state = 7 AND COALESCE(s.failure_class, 'permanent') = 'permanent'))";

/// A wave a notice may be due for.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeWave {
    pub id: i64,
    pub name: String,
    pub window_start: jiff::Timestamp,
    pub window_end: jiff::Timestamp,
}

/// A notice to send now, with what its template needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub mailbox_id: i64,
    pub kind: String,
    /// The window start it tells of (Unix ms), 0 for none.
    pub told_start: i64,
    pub wave_id: i64,
    pub address: String,
    pub display_name: Option<String>,
    pub organisation: Option<String>,
    /// Sending attempts so far.
    pub attempts: i64,
    /// For a correction: the window start the user was told before (Unix ms), else 0.
    pub old_start: i64,
    /// For a correction or a re-confirmation: the notice it answers (its id), else 0.
    pub answers: i64,
}

/// The "before" notices owed in a wave ([`Store::due_before`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DueBefore {
    /// To send now.
    pub due: Vec<Due>,
    /// How many mailboxes were looked at.
    pub looked: usize,
    /// Told this date by a correction or re-confirmation sent after this notice was due: to be
    /// recorded as dropped ([`crate::store::records::Record::Superseded`]), never sent.
    pub superseded: Vec<Due>,
}

/// Notices counted by wave, kind, status and sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeCount {
    pub wave: String,
    pub kind: String,
    pub status: String,
    pub sender: String,
    pub count: u64,
}

/// The mailbox states a query reads: all, or (with an event id) only those of mailboxes with
/// events after it, which a rowid range on `events` finds cheaply.
fn changed(after_event: Option<i64>) -> (&'static str, &'static str) {
    match after_event {
        Some(_) => (
            "(SELECT DISTINCT mailbox_id AS changed FROM events WHERE id > ?4) e
             JOIN mailbox_state s ON s.mailbox_id = e.changed",
            "",
        ),
        None => ("mailbox_state s", "AND ?4 >= 0"),
    }
}

/// A wave from `id, name, window_start, window_end` at column `at` on.
fn notice_wave(r: &rusqlite::Row, at: usize) -> rusqlite::Result<NoticeWave> {
    Ok(NoticeWave {
        id: r.get(at)?,
        name: r.get(at + 1)?,
        window_start: from_millis(r.get(at + 2)?),
        window_end: from_millis(r.get(at + 3)?),
    })
}

const DUE_COLUMNS: &str = "s.mailbox_id, s.wave_id, m.address, m.display_name, m.organisation";

fn due(r: &rusqlite::Row, kind: &str, told_start: Option<i64>) -> rusqlite::Result<Due> {
    Ok(Due {
        mailbox_id: r.get(0)?,
        wave_id: r.get(1)?,
        address: r.get(2)?,
        display_name: r.get(3)?,
        organisation: r.get(4)?,
        kind: kind.to_string(),
        told_start: match told_start {
            Some(t) => t,
            None => r.get(5)?,
        },
        attempts: r.get::<_, Option<i64>>(6).ok().flatten().unwrap_or(0),
        old_start: r.get::<_, Option<i64>>(7).ok().flatten().unwrap_or(0),
        answers: 0,
    })
}

/// How far back a told date is still answered by a correction (a week, in ms): a user told a
/// date longer ago learns the new one from its "before" notices.
const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// The latest notice that told mailbox `s` a date (a "before" notice, a correction or a
/// re-confirmation that went, or may have gone): what its user now believes.
const LATEST_TOLD: &str = "SELECT t.id FROM notices t WHERE t.mailbox_id = s.mailbox_id
     AND t.kind != 'after' AND t.status IN ('sent', 'uncertain', 'sending')
     ORDER BY t.created_at DESC, t.id DESC LIMIT 1";

/// Whether the latest action applied to mailbox `s` since notice `l` told its user a date was
/// taken with `--no-notice`: its change is not told.
const SILENCED: &str = "COALESCE((SELECT a.silent FROM actions a WHERE a.mailbox_id = s.mailbox_id
     AND a.applied_at >= l.created_at AND a.outcome LIKE 'applied%' ORDER BY a.id DESC LIMIT 1), 0)";

/// A mailbox whose user was told a date that no longer holds (or told "a date we will confirm"),
/// with what the follow-up rule needs to decide what they are owed and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Owed {
    /// The notice it would be (kind, told_start and answers are set by the rule).
    pub due: Due,
    /// The latest notice that told the user a date: its id, and the window start it told (Unix
    /// ms; 0: "a date we will confirm").
    pub told_id: i64,
    pub told_start: i64,
    /// The mailbox moves on no date now (held, skipped, failed for good).
    pub off: bool,
    /// Its wave's window now.
    pub window: (jiff::Timestamp, jiff::Timestamp),
    /// The latest action since they were told was taken with `--no-notice`.
    pub silenced: bool,
}

/// One notice of one user, as `notices preview` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeRow {
    pub kind: String,
    /// The window start it told (None: none, or "a date we will confirm").
    pub told_start: Option<jiff::Timestamp>,
    /// For a correction: the date the notice it answers had told.
    pub old_start: Option<jiff::Timestamp>,
    pub status: String,
    pub sender: Option<String>,
    pub reason: Option<String>,
    /// When it went (or was last tried, or dropped).
    pub at: jiff::Timestamp,
}

impl Store {
    /// Waves whose window opens between `from` and `to`.
    pub fn waves_opening(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<NoticeWave>> {
        let mut q = self.conn().prepare_cached(
            "SELECT id, name, window_start, window_end FROM waves
             WHERE window_start >= ?1 AND window_start <= ?2 ORDER BY window_start",
        )?;
        let rows = q
            .query_map(params![millis(from), millis(to)], |r| notice_wave(r, 0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The mailboxes moving in `wave` still owed `kind`, the notice `offset` before its window (no
    /// row yet, or a retry now due), at most `limit`, and how many were looked at. A user owed a
    /// correction or re-confirmation first waits for it: those the caller knows to be owed one
    /// later are passed in `waiting` and left out, and a user whose latest notice told another
    /// date (or none), unless that change was made with `--no-notice`, is skipped. A user told
    /// this date by a correction or re-confirmation sent after this notice was due has it
    /// recorded as dropped instead.
    pub fn due_before(
        &self,
        wave: &NoticeWave,
        (kind, offset): (&str, jiff::SignedDuration),
        now: jiff::Timestamp,
        waiting: &[i64],
        limit: usize,
    ) -> Result<DueBefore> {
        let told = millis(wave.window_start);
        let due_at = millis(wave.window_start - offset);
        let waiting = serde_json::to_string(waiting).unwrap_or_else(|_| "[]".into());
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT {DUE_COLUMNS}, ?3, n.attempts FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
             LEFT JOIN notices n ON n.mailbox_id = s.mailbox_id AND n.kind = ?2 AND n.told_start = ?3 AND n.answers = 0
             WHERE s.wave_id = ?1 AND {LIVE}
               AND (n.id IS NULL OR (n.status = 'retry' AND n.next_at <= ?4))
               AND s.mailbox_id NOT IN (SELECT value FROM json_each(?5))
             ORDER BY s.seq LIMIT ?6"
        ))?;
        let found: Vec<Due> = q
            .query_map(
                params![wave.id, kind, told, millis(now), waiting, limit as i64],
                |r| due(r, kind, Some(told)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        // What each was last told, looked up for these few only (a wave holds 83,000).
        let ids: Vec<i64> = found.iter().map(|d| d.mailbox_id).collect();
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT s.mailbox_id, l.told_start, l.created_at, {SILENCED} FROM json_each(?1) j
             JOIN mailbox_state s ON s.mailbox_id = j.value JOIN notices l ON l.id = ({LATEST_TOLD})"
        ))?;
        let last: std::collections::HashMap<i64, (i64, i64, bool)> = q
            .query_map(
                [serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())],
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let looked = found.len();
        let mut out = Vec::with_capacity(looked);
        let mut superseded = Vec::new();
        for d in found {
            match last.get(&d.mailbox_id) {
                None => out.push(d),
                Some(&(_, _, true)) => out.push(d),
                Some(&(start, at, false)) if start == told && at >= due_at => superseded.push(d),
                Some(&(start, _, false)) if start == told => out.push(d),
                // Told a date long gone, which no correction answers any more: this tells it.
                Some(&(start, _, false)) if start != 0 && start < millis(now) - WEEK_MS => {
                    out.push(d)
                }
                Some(_) => {} // its correction or re-confirmation goes first
            }
        }
        Ok(DueBefore {
            due: out,
            looked,
            superseded,
        })
    }

    /// The newest event's id: the notices look only at mailboxes with events after the last one
    /// they saw.
    pub fn last_event_id(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
    }

    /// Mailboxes that completed since `since` and are owed their "after" notice; with
    /// `after_event`, only those with events after it (else every mailbox is looked at).
    pub fn due_after(
        &self,
        since: jiff::Timestamp,
        now: jiff::Timestamp,
        after_event: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Due>> {
        let (from, filter) = changed(after_event);
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT {DUE_COLUMNS}, 0, n.attempts FROM {from} JOIN mailboxes m ON m.id = s.mailbox_id
             LEFT JOIN notices n ON n.mailbox_id = s.mailbox_id AND n.kind = 'after' AND n.told_start = 0
             WHERE s.state IN (5, 6) AND s.completed_at >= ?1 {filter}
               AND (n.id IS NULL OR (n.status = 'retry' AND n.next_at <= ?2))
             ORDER BY s.completed_at LIMIT ?3"
        ))?;
        let rows = q
            .query_map(
                params![
                    millis(since),
                    millis(now),
                    limit as i64,
                    after_event.unwrap_or(0)
                ],
                |r| due(r, "after", Some(0)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Users whose latest notice told a date their mailbox no longer moves on (rescheduled,
    /// rolled to a later wave, held, skipped, failed for good), or told "a date we will confirm"
    /// and moving again, and not yet answered: among every mailbox with events after
    /// `after_event` (when None: every user told a date within the last week, or told that a
    /// date will be confirmed) and the mailboxes `also`. When each is owed a correction or a
    /// re-confirmation is the follow-up rule's to say.
    pub fn owed_follow_ups(
        &self,
        after_event: Option<i64>,
        also: &[i64],
        now: jiff::Timestamp,
    ) -> Result<Vec<Owed>> {
        let driving = match after_event {
            Some(_) => {
                "SELECT mailbox_id FROM events WHERE id > ?1 UNION SELECT value FROM json_each(?2)"
                    .to_string()
            }
            // Every user told a date not a week gone, or told "a date we will confirm": a told
            // date further back was settled by the runs since (a 2.1-million estate's whole
            // history is not read at every start).
            None => format!(
                "SELECT DISTINCT mailbox_id FROM notices WHERE kind != 'after'
                   AND status IN ('sent', 'uncertain', 'sending')
                   AND (told_start = 0 OR told_start > ?3 - {WEEK_MS}) AND ?1 >= 0 AND ?2 IS NOT NULL"
            ),
        };
        let target = format!("CASE WHEN {OFF} THEN 0 ELSE w.window_start END");
        let mut q = self.conn().prepare_cached(&format!(
            "WITH ids(mailbox_id) AS ({driving})
             SELECT {DUE_COLUMNS}, l.told_start,
                    (SELECT c.attempts FROM notices c WHERE c.mailbox_id = s.mailbox_id AND c.answers = l.id
                        AND c.told_start = {target}),
                    l.id, {OFF}, w.window_start, w.window_end, {SILENCED}
             FROM ids JOIN mailbox_state s ON s.mailbox_id = ids.mailbox_id
             JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
             JOIN notices l ON l.id = ({LATEST_TOLD})
             WHERE s.state NOT IN (5, 6) AND (l.told_start = 0 OR l.told_start > ?3 - {WEEK_MS})
               AND ({OFF} OR w.window_start != l.told_start) AND NOT ({OFF} AND l.told_start = 0)
               AND NOT EXISTS (SELECT 1 FROM notices c WHERE c.mailbox_id = s.mailbox_id AND c.answers = l.id
                   AND c.told_start = {target} AND (c.status != 'retry' OR c.next_at > ?3))
             ORDER BY s.mailbox_id"
        ))?;
        let also = serde_json::to_string(also).unwrap_or_else(|_| "[]".into());
        let rows = q
            .query_map(params![after_event.unwrap_or(0), also, millis(now)], |r| {
                Ok(Owed {
                    due: Due {
                        mailbox_id: r.get(0)?,
                        wave_id: r.get(1)?,
                        address: r.get(2)?,
                        display_name: r.get(3)?,
                        organisation: r.get(4)?,
                        kind: String::new(),
                        told_start: 0,
                        attempts: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                        old_start: r.get(5)?,
                        answers: r.get(7)?,
                    },
                    told_id: r.get(7)?,
                    told_start: r.get(5)?,
                    off: r.get(8)?,
                    window: (from_millis(r.get(9)?), from_millis(r.get(10)?)),
                    silenced: r.get(11)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// What each of these mailboxes' users was last told: the notice's id and the window start
    /// it told (Unix ms; 0: "a date we will confirm"). Users told nothing yet are left out.
    pub fn told(&self, mailboxes: &[i64]) -> Result<std::collections::HashMap<i64, (i64, i64)>> {
        let ids = serde_json::to_string(mailboxes).unwrap_or_else(|_| "[]".into());
        let mut q = self.conn().prepare(&format!(
            "SELECT s.mailbox_id, l.id, l.told_start FROM json_each(?1) j
             JOIN mailbox_state s ON s.mailbox_id = j.value
             JOIN notices l ON l.id = ({LATEST_TOLD})"
        ))?;
        let rows = q
            .query_map([ids], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every notice of one mailbox's user, oldest first.
    pub fn notices_of(&self, mailbox_id: i64) -> Result<Vec<NoticeRow>> {
        let mut q = self.conn().prepare(
            "SELECT n.kind, n.told_start, n.status, n.sender, n.reason, COALESCE(n.done_at, n.created_at),
                    a.told_start
             FROM notices n LEFT JOIN notices a ON a.id = n.answers AND n.answers != 0
             WHERE n.mailbox_id = ?1 ORDER BY n.created_at, n.id",
        )?;
        let date = |t: Option<i64>| t.filter(|t| *t > 0).map(from_millis);
        let rows = q
            .query_map([mailbox_id], |r| {
                Ok(NoticeRow {
                    kind: r.get(0)?,
                    told_start: date(r.get(1)?),
                    old_start: date(r.get(6)?),
                    status: r.get(2)?,
                    sender: r.get(3)?,
                    reason: r.get(4)?,
                    at: from_millis(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Messages each sender sent (or may have sent) since `since`, oldest first: what the
    /// service counts against its minute and day limits.
    pub fn sender_history(&self, since: jiff::Timestamp) -> Result<Vec<(String, jiff::Timestamp)>> {
        let mut q = self.conn().prepare(
            "SELECT sender, COALESCE(done_at, created_at) FROM notices
             WHERE sender IS NOT NULL AND status IN ('sent', 'uncertain', 'sending')
               AND COALESCE(done_at, created_at) >= ?1 ORDER BY 2",
        )?;
        let rows = q
            .query_map([millis(since)], |r| {
                Ok((r.get::<_, String>(0)?, from_millis(r.get(1)?)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every notice counted by wave, kind, status and sender.
    pub fn notice_counts(&self) -> Result<Vec<NoticeCount>> {
        let mut q = self.conn().prepare(
            "SELECT COALESCE(w.name, ''), n.kind, n.status, COALESCE(n.sender, ''), COUNT(*)
             FROM notices n LEFT JOIN waves w ON w.id = n.wave_id GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        )?;
        let rows = q
            .query_map([], |r| {
                Ok(NoticeCount {
                    wave: r.get(0)?,
                    kind: r.get(1)?,
                    status: r.get(2)?,
                    sender: r.get(3)?,
                    count: r.get::<_, i64>(4)?.max(0) as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Waves whose window closed between `from` and `to` (with `all_done`: whose window has
    /// opened by `to`, the run's work being over) and whose report has not been mailed (nor may
    /// have been).
    pub fn reports_owed(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        all_done: bool,
    ) -> Result<Vec<NoticeWave>> {
        let mut q = self.conn().prepare_cached(
            "SELECT w.id, w.name, w.window_start, w.window_end FROM waves w
             LEFT JOIN reports_mailed r ON r.wave_id = w.id
             WHERE w.window_end >= ?1 AND (CASE WHEN ?3 THEN w.window_start ELSE w.window_end END) <= ?2
               AND (r.wave_id IS NULL OR r.status = 'retry')
               AND EXISTS (SELECT 1 FROM mailbox_state s WHERE s.wave_id = w.id)
             ORDER BY w.window_end",
        )?;
        let rows = q
            .query_map(params![millis(from), millis(to), all_done], |r| {
                notice_wave(r, 0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// One mailbox as a notice would address it, with its wave (for `notices preview`).
    pub fn notice_subject(&self, address: &str) -> Result<Option<(Due, NoticeWave)>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {DUE_COLUMNS}, w.window_start, 0, 0, w.id, w.name, w.window_start, w.window_end
                     FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
                     WHERE m.address = ?1 COLLATE NOCASE"
                ),
                [address],
                |r| {
                    Ok((due(r, "preview", None)?, notice_wave(r, 8)?))
                },
            )
            .optional()?)
    }
}

/// Licence findings by status, and the mailboxes still without one (for the reports).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LicenceView {
    pub by_status: Vec<(String, u64)>,
    /// (address, wave, status, reason) of mailboxes not licensed, at most the limit asked.
    pub unlicensed: Vec<(String, String, String, String)>,
}

impl Store {
    /// Mailboxes moving in `wave` whose user is not known to hold a licence: never checked, a
    /// failed assignment, or found wanting (no licence, no user) more than `recheck` ago.
    pub fn licence_unchecked(
        &self,
        wave_id: i64,
        now: jiff::Timestamp,
        recheck: jiff::SignedDuration,
    ) -> Result<Vec<(i64, String)>> {
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT s.mailbox_id, m.address FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
             LEFT JOIN licences l ON l.mailbox_id = s.mailbox_id
             WHERE s.wave_id = ?1 AND {LIVE}
               AND (l.status IS NULL OR l.status = 'failed' OR (l.status IN ('missing', 'no_user') AND l.at <= ?2))
             ORDER BY s.seq"
        ))?;
        let rows = q
            .query_map(params![wave_id, millis(now - recheck)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn licence_view(&self, limit: usize) -> Result<LicenceView> {
        let mut q = self
            .conn()
            .prepare("SELECT status, COUNT(*) FROM licences GROUP BY 1 ORDER BY 1")?;
        let by_status = q
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut q = self.conn().prepare(
            "SELECT m.address, w.name, l.status, COALESCE(l.reason, '') FROM licences l
             JOIN mailboxes m ON m.id = l.mailbox_id JOIN mailbox_state s ON s.mailbox_id = l.mailbox_id
             JOIN waves w ON w.id = s.wave_id
             WHERE l.status NOT IN ('licensed', 'assigned') ORDER BY w.window_start, m.address LIMIT ?1",
        )?;
        let unlicensed = q
            .query_map([limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(LicenceView {
            by_status,
            unlicensed,
        })
    }
}
