//! The run's records beside the mailboxes' states: notices to users, the mailed wave reports,
//! licence findings and the alerts raised. The notifier, the licence checker and the attention
//! watch read with connections of their own, but write only through the writer thread, as every
//! other change does: one writing connection for the whole run ([`super::writer`]).

use rusqlite::{Connection, params};

use super::notices::{Due, LIVE, NoticeWave};
use super::{Result, millis};

/// A record the writer applies. Times are the run clock's.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// At a run's start: notices (and wave reports) whose call may have been on the wire when the
    /// last run ended become 'uncertain' and are never sent again. Replies with how many notices.
    SettleOpenNotices,
    /// Before the call: the notice is being sent by `sender` (committed before the call goes).
    /// Replies with the notice's id.
    NoticeSending {
        due: Box<Due>,
        sender: String,
        at: jiff::Timestamp,
    },
    /// After the call: what came of it ('sent', 'retry' with when, 'failed' or 'uncertain') and why.
    NoticeOutcome {
        id: i64,
        status: &'static str,
        reason: Option<String>,
        next_at: Option<jiff::Timestamp>,
        at: jiff::Timestamp,
    },
    /// `kind` dropped, with `reason`, for every mailbox moving in `wave` that has no row for it
    /// yet (and for its retries). Replies with how many.
    DropNotices {
        wave: NoticeWave,
        kind: String,
        reason: &'static str,
        at: jiff::Timestamp,
    },
    /// A "before" notice superseded by a correction or re-confirmation that told the same date
    /// after it was due: recorded as dropped, never sent.
    Superseded { due: Box<Due>, at: jiff::Timestamp },
    /// A wave's report is being mailed ('sending', before the call), or what came of it.
    ReportMailed {
        wave_id: i64,
        status: &'static str,
        sender: String,
        reason: Option<String>,
        at: jiff::Timestamp,
    },
    /// What the licence check found or did for one user.
    Licence {
        mailbox_id: i64,
        status: &'static str,
        sku: Option<String>,
        reason: Option<String>,
        at: jiff::Timestamp,
    },
    /// An alert named these mailboxes.
    Alerted { ids: Vec<i64>, at: jiff::Timestamp },
    /// Alerted mailboxes that no longer need a person (a retry, a release, a licence) are
    /// forgotten, so that a new need of theirs is alerted again. Replies with how many.
    ForgetRecovered,
}

/// What applying a record gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    Id(i64),
    Count(u64),
}

impl Record {
    /// Applies the record on the writer's transaction.
    pub(super) fn apply(self, conn: &Connection) -> Result<Written> {
        match self {
            Record::SettleOpenNotices => {
                conn.execute(
                    "UPDATE reports_mailed SET status = 'uncertain' WHERE status = 'sending'",
                    [],
                )?;
                Ok(Written::Count(conn.execute(
                    "UPDATE notices SET status = 'uncertain', done_at = created_at,
                         reason = 'the run ended while it was being sent: not sent again'
                     WHERE status = 'sending'",
                    [],
                )? as u64))
            }
            Record::NoticeSending { due: d, sender, at } => Ok(Written::Id(
                conn.prepare_cached(
                    "INSERT INTO notices (mailbox_id, kind, told_start, wave_id, status, sender, attempts, created_at, answers)
                     VALUES (?1, ?2, ?3, ?4, 'sending', ?5, 1, ?6, ?7)
                     ON CONFLICT (mailbox_id, kind, told_start, answers) DO UPDATE SET status = 'sending',
                         sender = excluded.sender, attempts = attempts + 1, created_at = excluded.created_at,
                         next_at = NULL, reason = NULL
                     RETURNING id",
                )?
                .query_row(
                    params![
                        d.mailbox_id,
                        d.kind,
                        d.told_start,
                        d.wave_id,
                        sender,
                        millis(at),
                        d.answers
                    ],
                    |r| r.get(0),
                )?,
            )),
            Record::NoticeOutcome {
                id,
                status,
                reason,
                next_at,
                at,
            } => {
                conn.prepare_cached(
                    "UPDATE notices SET status = ?2, reason = ?3, next_at = ?4, done_at = ?5 WHERE id = ?1",
                )?
                .execute(params![id, status, reason, next_at.map(millis), millis(at)])?;
                Ok(Written::Done)
            }
            Record::DropNotices {
                wave,
                kind,
                reason,
                at,
            } => {
                let retried = conn
                    .prepare_cached(
                        "UPDATE notices SET status = 'dropped', reason = ?3, done_at = ?4
                         WHERE kind = ?1 AND told_start = ?2 AND status = 'retry'",
                    )?
                    .execute(params![kind, millis(wave.window_start), reason, millis(at)])?
                    as u64;
                let fresh = conn.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO notices (mailbox_id, kind, told_start, wave_id, status, reason, created_at, done_at)
                     SELECT s.mailbox_id, ?2, ?3, s.wave_id, 'dropped', ?4, ?5, ?5 FROM mailbox_state s
                     WHERE s.wave_id = ?1 AND {LIVE}"
                ))?
                .execute(params![
                    wave.id,
                    kind,
                    millis(wave.window_start),
                    reason,
                    millis(at)
                ])? as u64;
                Ok(Written::Count(retried + fresh))
            }
            Record::Superseded { due: d, at } => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO notices (mailbox_id, kind, told_start, wave_id, status, reason, created_at, done_at)
                     VALUES (?1, ?2, ?3, ?4, 'dropped',
                             'superseded: a later correction or re-confirmation told this date', ?5, ?5)",
                )?
                .execute(params![d.mailbox_id, d.kind, d.told_start, d.wave_id, millis(at)])?;
                Ok(Written::Done)
            }
            Record::ReportMailed {
                wave_id,
                status,
                sender,
                reason,
                at,
            } => {
                conn.execute(
                    "INSERT INTO reports_mailed (wave_id, status, sender, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (wave_id) DO UPDATE SET status = excluded.status, sender = excluded.sender,
                         reason = excluded.reason, at = excluded.at",
                    params![wave_id, status, sender, reason, millis(at)],
                )?;
                Ok(Written::Done)
            }
            Record::Licence {
                mailbox_id,
                status,
                sku,
                reason,
                at,
            } => {
                conn.prepare_cached(
                    "INSERT INTO licences (mailbox_id, status, sku, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (mailbox_id) DO UPDATE SET status = excluded.status, sku = excluded.sku,
                         reason = excluded.reason, at = excluded.at",
                )?
                .execute(params![mailbox_id, status, sku, reason, millis(at)])?;
                Ok(Written::Done)
            }
            Record::Alerted { ids, at } => {
                let mut q = conn.prepare_cached(
                    "INSERT OR REPLACE INTO alerted (mailbox_id, at) VALUES (?1, ?2)",
                )?;
                for id in ids {
                    q.execute(params![id, millis(at)])?;
                }
                Ok(Written::Done)
            }
            Record::ForgetRecovered => Ok(Written::Count(conn.execute(
                &format!(
                    "DELETE FROM alerted WHERE mailbox_id NOT IN (SELECT mailbox_id FROM ({}))",
                    super::attention::needing()
                ),
                [],
            )? as u64)),
        }
    }
}
