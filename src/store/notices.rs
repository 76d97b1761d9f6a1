//! The notices' bookkeeping (`notices` table): what is due, what went, from whom, and what was
//! dropped. A row is written before the call that sends it and updated after, so that a crash can
//! lose a notice's outcome but never send it twice.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, from_millis, millis};

/// Mailboxes moving in their wave (a transient failure is retried, a skipped-items approval may
/// come): a "before" notice goes to these.
const LIVE: &str = "(s.state IN (0, 1, 2, 3) OR (s.state = 7 AND s.failure_class IN ('transient', 'needs_approval')))";

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
    })
}

impl Store {
    /// At a run's start: notices whose call may have been on the wire when the last run ended
    /// become 'uncertain' and are never sent again. Returns how many.
    pub fn settle_open_notices(&self) -> Result<u64> {
        self.conn().execute(
            "UPDATE reports_mailed SET status = 'uncertain' WHERE status = 'sending'",
            [],
        )?;
        Ok(self.conn().execute(
            "UPDATE notices SET status = 'uncertain', done_at = created_at,
                 reason = 'the run ended while it was being sent: not sent again'
             WHERE status = 'sending'",
            [],
        )? as u64)
    }

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

    /// Records `kind` as dropped, with `reason`, for every mailbox moving in `wave` that has no row
    /// for it yet. Returns how many.
    pub fn drop_notices(
        &self,
        wave: &NoticeWave,
        kind: &str,
        reason: &str,
        now: jiff::Timestamp,
    ) -> Result<u64> {
        let retried = self
            .conn()
            .prepare_cached(
                "UPDATE notices SET status = 'dropped', reason = ?3, done_at = ?4
             WHERE kind = ?1 AND told_start = ?2 AND status = 'retry'",
            )?
            .execute(params![
                kind,
                millis(wave.window_start),
                reason,
                millis(now)
            ])? as u64;
        Ok(retried + self.conn().prepare_cached(&format!(
            "INSERT OR IGNORE INTO notices (mailbox_id, kind, told_start, wave_id, status, reason, created_at, done_at)
             SELECT s.mailbox_id, ?2, ?3, s.wave_id, 'dropped', ?4, ?5, ?5 FROM mailbox_state s
             WHERE s.wave_id = ?1 AND {LIVE}"
        ))?
        .execute(params![
            wave.id,
            kind,
            millis(wave.window_start),
            reason,
            millis(now)
        ])? as u64)
    }

    /// The mailboxes moving in `wave` still owed `kind` (no row yet, or a retry now due).
    pub fn due_before(
        &self,
        wave: &NoticeWave,
        kind: &str,
        now: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<Due>> {
        let told = millis(wave.window_start);
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT {DUE_COLUMNS}, ?3, n.attempts FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
             LEFT JOIN notices n ON n.mailbox_id = s.mailbox_id AND n.kind = ?2 AND n.told_start = ?3
             WHERE s.wave_id = ?1 AND {LIVE}
               AND (n.id IS NULL OR (n.status = 'retry' AND n.next_at <= ?4))
             ORDER BY s.seq LIMIT ?5"
        ))?;
        let rows = q
            .query_map(
                params![wave.id, kind, told, millis(now), limit as i64],
                |r| due(r, kind, Some(told)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
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

    /// Mailboxes told of a window they will not move in (rescheduled, rolled to a later wave,
    /// held, skipped, failed for good) and not yet corrected. A correction's `told_start` is the
    /// new window's start, or 0 when there is none yet.
    pub fn due_corrections(
        &self,
        now: jiff::Timestamp,
        after_event: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Due>> {
        let only_changed = match after_event {
            Some(_) => "AND n.mailbox_id IN (SELECT mailbox_id FROM events WHERE id > ?3)",
            None => "AND ?3 >= 0",
        };
        let mut q = self.conn().prepare_cached(&format!(
            "SELECT {DUE_COLUMNS}, CASE WHEN {OFF} THEN 0 ELSE w.window_start END AS new_start,
                    (SELECT c.attempts FROM notices c WHERE c.mailbox_id = s.mailbox_id AND c.kind = 'correction'
                        AND c.told_start = CASE WHEN {OFF} THEN 0 ELSE w.window_start END),
                    MAX(n.told_start)
             FROM notices n JOIN mailbox_state s ON s.mailbox_id = n.mailbox_id
             JOIN mailboxes m ON m.id = n.mailbox_id JOIN waves w ON w.id = s.wave_id
             WHERE n.kind LIKE 'before:%' AND n.status IN ('sent', 'uncertain', 'sending')
               AND n.told_start > ?1 - 86400000 {only_changed}
               AND s.state NOT IN (5, 6) AND NOT (s.state = 7 AND s.failure_class IN ('transient', 'needs_approval'))
               AND ({OFF} OR w.window_start != n.told_start)
               AND NOT EXISTS (SELECT 1 FROM notices c WHERE c.mailbox_id = s.mailbox_id AND c.kind = 'correction'
                   AND c.told_start = CASE WHEN {OFF} THEN 0 ELSE w.window_start END
                   AND (c.status != 'retry' OR c.next_at > ?1))
               AND NOT (NOT {OFF} AND EXISTS (SELECT 1 FROM notices b WHERE b.mailbox_id = s.mailbox_id
                   AND b.kind LIKE 'before:%' AND b.told_start = w.window_start
                   AND b.status IN ('sent', 'uncertain', 'sending')))
             GROUP BY s.mailbox_id ORDER BY s.mailbox_id LIMIT ?2"
        ))?;
        let rows = q
            .query_map(
                params![millis(now), limit as i64, after_event.unwrap_or(0)],
                |r| due(r, "correction", None),
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Before the call: the notice is being sent by `sender` (committed before the call goes).
    pub fn notice_sending(&self, d: &Due, sender: &str, now: jiff::Timestamp) -> Result<i64> {
        Ok(self.conn().prepare_cached(
            "INSERT INTO notices (mailbox_id, kind, told_start, wave_id, status, sender, attempts, created_at)
             VALUES (?1, ?2, ?3, ?4, 'sending', ?5, 1, ?6)
             ON CONFLICT (mailbox_id, kind, told_start) DO UPDATE SET status = 'sending',
                 sender = excluded.sender, attempts = attempts + 1, created_at = excluded.created_at,
                 next_at = NULL, reason = NULL
             RETURNING id",
        )?
        .query_row(
            params![d.mailbox_id, d.kind, d.told_start, d.wave_id, sender, millis(now)],
            |r| r.get(0),
        )?)
    }

    /// After the call: 'sent', 'retry' (with when), 'failed' or 'uncertain', and why.
    pub fn notice_outcome(
        &self,
        id: i64,
        status: &str,
        reason: Option<&str>,
        next_at: Option<jiff::Timestamp>,
        now: jiff::Timestamp,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE notices SET status = ?2, reason = ?3, next_at = ?4, done_at = ?5 WHERE id = ?1",
            )?
            .execute(params![id, status, reason, next_at.map(millis), millis(now)])?;
        Ok(())
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

    /// The report of a wave is being mailed ('sending', before the call), or what came of it.
    pub fn report_mailed(
        &self,
        wave_id: i64,
        status: &str,
        sender: &str,
        reason: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO reports_mailed (wave_id, status, sender, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (wave_id) DO UPDATE SET status = excluded.status, sender = excluded.sender,
                 reason = excluded.reason, at = excluded.at",
            params![wave_id, status, sender, reason, millis(now)],
        )?;
        Ok(())
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

    pub fn record_licence(
        &self,
        mailbox_id: i64,
        status: &str,
        sku: Option<&str>,
        reason: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO licences (mailbox_id, status, sku, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (mailbox_id) DO UPDATE SET status = excluded.status, sku = excluded.sku,
                     reason = excluded.reason, at = excluded.at",
            )?
            .execute(params![mailbox_id, status, sku, reason, millis(now)])?;
        Ok(())
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
