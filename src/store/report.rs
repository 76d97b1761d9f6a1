//! What the reports read besides the status: failures by reason, cut-overs by hour, the runs, and
//! who needs attention, each optionally limited to what changed since a moment.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::status::AttentionRow;
use super::{Result, Store, from_millis, millis};

/// Failed mailboxes that share a class and the start of the service's message (its error type).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureReason {
    pub class: String,
    pub reason: String,
    pub mailboxes: u64,
}

/// One run as the reports tell it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub started_at: jiff::Timestamp,
    /// None: still going, or killed before it could say how it ended.
    pub ended_at: Option<jiff::Timestamp>,
    pub outcome: Option<String>,
    /// The run summary (JSON) it stored when it ended.
    pub summary: Option<String>,
}

/// Who needs attention, split: people must act on these; the run retries these itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attention {
    pub person_total: u64,
    pub person: Vec<AttentionRow>,
    pub retrying_total: u64,
    pub retrying: Vec<AttentionRow>,
}

impl Store {
    /// The plan's time zone (the schedule's), if a plan is loaded.
    pub fn plan_timezone(&self) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT timezone FROM plans WHERE current = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Failed mailboxes by class and error type (the service's message up to its first colon),
    /// most first; with `since`, only those whose state changed since then.
    pub fn failures_by_reason(&self, since: Option<jiff::Timestamp>) -> Result<Vec<FailureReason>> {
        let mut q = self.conn().prepare(
            "SELECT COALESCE(failure_class, 'permanent'),
                    CASE WHEN instr(COALESCE(last_error, ''), ':') > 0
                         THEN substr(last_error, 1, instr(last_error, ':') - 1)
                         ELSE COALESCE(last_error, 'no message') END,
                    COUNT(*)
             FROM mailbox_state WHERE state = 7 AND (?1 IS NULL OR updated_at >= ?1)
             GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        )?;
        let rows = q
            .query_map([since.map(millis)], |r| {
                Ok(FailureReason {
                    class: r.get(0)?,
                    reason: r.get::<_, String>(1)?.trim().to_string(),
                    mailboxes: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Cut-overs by hour (the hour's start, and how many completed in it), oldest first.
    pub fn cutovers_by_hour(
        &self,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<(jiff::Timestamp, u64)>> {
        let mut q = self.conn().prepare(
            "SELECT completed_at / 3600000, COUNT(*) FROM mailbox_state
             WHERE state IN (5, 6) AND completed_at IS NOT NULL AND (?1 IS NULL OR completed_at >= ?1)
             GROUP BY 1 ORDER BY 1",
        )?;
        let rows = q
            .query_map([since.map(millis)], |r| {
                Ok((
                    from_millis(r.get::<_, i64>(0)? * 3_600_000),
                    r.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The latest runs (at most `limit`, newest first); with `since`, those that started or ended
    /// since then, or have not ended.
    pub fn runs(&self, since: Option<jiff::Timestamp>, limit: usize) -> Result<Vec<RunRecord>> {
        self.runs_where(since, limit, false)
    }

    /// [`Store::runs`] without the short sessions in which an action command applied its own
    /// actions (outcome `actions`): the runs that worked the waves, as the reports list them.
    pub fn work_runs(
        &self,
        since: Option<jiff::Timestamp>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        self.runs_where(since, limit, true)
    }

    fn runs_where(
        &self,
        since: Option<jiff::Timestamp>,
        limit: usize,
        work_only: bool,
    ) -> Result<Vec<RunRecord>> {
        let mut q = self.conn().prepare(
            "SELECT id, command, started_at, ended_at, outcome, summary FROM runs
             WHERE (?1 IS NULL OR COALESCE(ended_at, started_at) >= ?1 OR ended_at IS NULL)
               AND NOT (?3 AND outcome IS 'actions')
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q
            .query_map(params![since.map(millis), limit as i64, work_only], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    command: r.get(1)?,
                    started_at: from_millis(r.get(2)?),
                    ended_at: r.get::<_, Option<i64>>(3)?.map(from_millis),
                    outcome: r.get(4)?,
                    summary: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The mailboxes a person must act on ([`super::attention`]), apart from the transient
    /// failures the run retries itself; at most `limit` of each are listed, all are counted.
    pub fn attention_split(
        &self,
        since: Option<jiff::Timestamp>,
        limit: usize,
    ) -> Result<Attention> {
        const RETRYING: &str = "s.state = 7 AND s.failure_class = 'transient'";
        let (person_total, person) = self.needs_person(since, limit)?;
        let since = since.map(millis);
        let retrying_total = self.conn().query_row(
            &format!(
                "SELECT COUNT(*) FROM mailbox_state s WHERE {RETRYING} AND (?1 IS NULL OR s.updated_at >= ?1)"
            ),
            [since],
            |r| r.get::<_, i64>(0),
        )? as u64;
        let retrying = self.attention_rows(
            &format!(
                "WHERE {RETRYING} AND (?1 IS NULL OR s.updated_at >= ?1)
                 ORDER BY w.window_start, m.address LIMIT ?2"
            ),
            params![since, limit as i64],
        )?;
        Ok(Attention {
            person_total,
            person,
            retrying_total,
            retrying,
        })
    }
}
