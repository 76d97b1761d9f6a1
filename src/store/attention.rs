//! "Needs a person", one meaning for the alert, the run summary, `status`, the reports and exit
//! code 3: the run cannot move the mailbox on by itself. Its move failed for good, it waits for its
//! skipped items to be approved, mailwave held it because no later wave was left, or its user has no
//! licence (none assigned, or no cloud user) and it has not moved yet. A hold an operator placed
//! does not count: the operator knows of it, and the summary lists those apart with their reasons.

use std::collections::BTreeMap;

use rusqlite::params;

use super::status::AttentionRow;
use super::{Result, State, Store, millis};

/// A column (`cause`, `detail`) of the event that made a held mailbox `s` held: its last move
/// into `held`.
fn hold_event(column: &str) -> String {
    format!(
        "(SELECT e.{column} FROM events e WHERE e.mailbox_id = s.mailbox_id
           AND e.to_state = 8 AND e.from_state IS NOT 8 ORDER BY e.id DESC LIMIT 1)"
    )
}

/// Why a mailbox needs a person, in the words `status` and the alert count by.
pub const REASONS: [(&str, &str); 4] = [
    ("failed_for_good", "failed for good"),
    ("needs_approval", "waiting for approval"),
    ("no_wave_left", "held by mailwave: no later wave"),
    ("no_licence", "no licence"),
];

/// Every mailbox that needs a person, `(mailbox_id, why)`: failed for good, waiting for approval
/// or held by mailwave (from its state), or else without a licence before its move.
pub(super) fn needing() -> String {
    let by_state = format!(
        "(s.state = 7 AND COALESCE(s.failure_class, 'permanent') IN ('permanent', 'needs_approval'))
         OR (s.state = 8 AND {} = 'cutover')",
        hold_event("cause")
    );
    // Through the waves (CROSS JOIN keeps them the outer loop), so that the (wave, state) index
    // finds the failed and held mailboxes without reading the other two million; the licence
    // part reads only the users found wanting (a partial index).
    format!(
        "SELECT s.mailbox_id AS mailbox_id,
                CASE WHEN s.state = 8 THEN 'no_wave_left'
                     WHEN s.failure_class = 'needs_approval' THEN 'needs_approval'
                     ELSE 'failed_for_good' END AS why
         FROM waves w CROSS JOIN mailbox_state s ON s.wave_id = w.id AND s.state IN (7, 8)
         WHERE {by_state}
         UNION ALL
         SELECT s.mailbox_id, 'no_licence' FROM licences l JOIN mailbox_state s ON s.mailbox_id = l.mailbox_id
         WHERE l.status IN ('missing', 'no_user') AND s.state NOT IN (5, 6, 9) AND NOT ({by_state})"
    )
}

impl Store {
    /// How many mailboxes need a person, by reason ([`REASONS`] keys, every one present).
    pub fn needs_person_by_reason(&self) -> Result<BTreeMap<&'static str, u64>> {
        let mut out: BTreeMap<&'static str, u64> = REASONS.iter().map(|(k, _)| (*k, 0)).collect();
        let mut q = self.conn().prepare(&format!(
            "WITH needing AS ({}) SELECT why, COUNT(*) FROM needing GROUP BY why",
            needing()
        ))?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let why: String = r.get(0)?;
            if let Some((key, _)) = REASONS.iter().find(|(k, _)| *k == why) {
                out.insert(key, r.get::<_, i64>(1)?.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// The mailboxes that need a person (at most `limit`, earliest wave first; with `since`, only
    /// those whose state changed since then), and how many there are in all.
    pub fn needs_person(
        &self,
        since: Option<jiff::Timestamp>,
        limit: usize,
    ) -> Result<(u64, Vec<AttentionRow>)> {
        let since = since.map(millis);
        let total: i64 = self.conn().query_row(
            &format!(
                "WITH needing AS ({}) SELECT COUNT(*) FROM needing n JOIN mailbox_state s ON s.mailbox_id = n.mailbox_id
                 WHERE ?1 IS NULL OR s.updated_at >= ?1",
                needing()
            ),
            [since],
            |r| r.get(0),
        )?;
        let mut q = self.conn().prepare(&format!(
            "WITH needing AS ({}) SELECT m.address, w.name, s.state, n.why, s.failure_class, s.last_error,
                    {},
                    (SELECT l.status || COALESCE(': ' || l.reason, '') FROM licences l WHERE l.mailbox_id = s.mailbox_id)
             FROM needing n JOIN mailbox_state s ON s.mailbox_id = n.mailbox_id
             JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
             WHERE ?1 IS NULL OR s.updated_at >= ?1
             ORDER BY w.window_start, m.address LIMIT ?2",
            needing(),
            hold_event("detail")
        ))?;
        let rows = q
            .query_map(params![since, limit as i64], |r| {
                let why: String = r.get(3)?;
                let (class, reason): (Option<String>, Option<String>) = match why.as_str() {
                    "no_wave_left" => (None, r.get(6)?),
                    "no_licence" => (
                        None,
                        r.get::<_, Option<String>>(7)?
                            .map(|l| format!("no licence ({l})")),
                    ),
                    _ => (r.get(4)?, r.get(5)?),
                };
                Ok(AttentionRow {
                    address: r.get(0)?,
                    wave: r.get(1)?,
                    state: State::from_code(r.get(2)?).unwrap_or(State::Failed),
                    class,
                    reason,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((total.max(0) as u64, rows))
    }

    /// Mailboxes an operator holds (at most `limit`), each with who held it and why, and how many.
    pub fn operator_holds(&self, limit: usize) -> Result<(u64, Vec<AttentionRow>)> {
        let held = "FROM waves w CROSS JOIN mailbox_state s ON s.wave_id = w.id AND s.state = 8";
        let by_operator = format!("{} IS NOT 'cutover'", hold_event("cause"));
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) {held} WHERE {by_operator}"),
            [],
            |r| r.get(0),
        )?;
        let mut q = self.conn().prepare(&format!(
            "SELECT m.address, w.name,
                    (SELECT 'by ' || a.by || COALESCE(': ' || a.reason, '') FROM actions a
                     WHERE a.mailbox_id = s.mailbox_id AND a.kind = 'hold' ORDER BY a.id DESC LIMIT 1)
             {held} JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE {by_operator} ORDER BY w.window_start, m.address LIMIT ?1"
        ))?;
        let rows = q
            .query_map([limit as i64], |r| {
                Ok(AttentionRow {
                    address: r.get(0)?,
                    wave: r.get(1)?,
                    state: State::Held,
                    class: None,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((total.max(0) as u64, rows))
    }

    /// The mailboxes that need a person and no alert has named yet: `(mailbox_id, why)`.
    pub fn needing_person_unalerted(&self) -> Result<Vec<(i64, String)>> {
        let mut q = self.conn().prepare(&format!(
            "WITH needing AS ({}) SELECT n.mailbox_id, n.why FROM needing n
             WHERE NOT EXISTS (SELECT 1 FROM alerted a WHERE a.mailbox_id = n.mailbox_id)
             ORDER BY n.mailbox_id",
            needing()
        ))?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
