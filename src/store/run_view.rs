//! What a run loads from the store: the waves that hold mailboxes, every planned mailbox's state
//! (streamed, so two million rows never sit in memory twice), and the intents without an outcome.

use rusqlite::params;

use super::{FailureClass, Result, State, Store, from_millis};

#[derive(Debug, Clone, PartialEq)]
pub struct WaveRow {
    pub id: i64,
    pub name: String,
    pub seq: i64,
    pub window_start: jiff::Timestamp,
    pub window_end: jiff::Timestamp,
    pub prestage_start: jiff::Timestamp,
    pub capacity: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MailboxRow {
    pub id: i64,
    pub address: String,
    pub wave_id: i64,
    pub state: State,
    pub(crate) attempts: i64,
    pub(crate) failure_class: Option<FailureClass>,
    pub request_id: Option<String>,
    pub(crate) submitted_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenIntent {
    pub id: i64,
    pub mailbox_id: i64,
    pub operation: String,
    pub correlation: [u8; 16],
    pub created_at: jiff::Timestamp,
    /// The wave a create was made for (schema 2 on; unknown for older intents).
    pub wave_id: Option<i64>,
}

fn wave_row(r: &rusqlite::Row) -> rusqlite::Result<WaveRow> {
    Ok(WaveRow {
        id: r.get(0)?,
        name: r.get(1)?,
        seq: r.get(2)?,
        window_start: from_millis(r.get(3)?),
        window_end: from_millis(r.get(4)?),
        prestage_start: from_millis(r.get(5)?),
        capacity: r.get(6)?,
    })
}

impl Store {
    /// One wave by id, whether or not it holds mailboxes (a wave an action moves mailboxes into).
    pub fn wave_row(&self, id: i64) -> Result<Option<WaveRow>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT id, name, seq, window_start, window_end, prestage_start, capacity FROM waves WHERE id = ?1",
                [id],
                wave_row,
            )
            .optional()?)
    }

    /// Waves that hold mailboxes, in window order.
    pub fn waves(&self) -> Result<Vec<WaveRow>> {
        let mut q = self.conn().prepare(
            "SELECT id, name, seq, window_start, window_end, prestage_start, capacity FROM waves w
             WHERE EXISTS (SELECT 1 FROM mailbox_state s WHERE s.wave_id = w.id)
             ORDER BY window_start, name",
        )?;
        let rows = q.query_map([], wave_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every planned mailbox, by wave and plan order.
    pub(crate) fn for_each_mailbox(&self, mut f: impl FnMut(MailboxRow)) -> Result<()> {
        let mut q = self.conn().prepare(
            "SELECT s.mailbox_id, m.address, s.wave_id, s.state, s.attempts, s.failure_class, s.request_id, s.submitted_at
             FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
             ORDER BY s.wave_id, s.seq",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            f(MailboxRow {
                id: r.get(0)?,
                address: r.get(1)?,
                wave_id: r.get(2)?,
                state: State::from_code(r.get(3)?).unwrap_or(State::Failed),
                attempts: r.get(4)?,
                failure_class: r
                    .get::<_, Option<String>>(5)?
                    .and_then(|c| FailureClass::from_name(&c)),
                request_id: r.get(6)?,
                submitted_at: r.get::<_, Option<i64>>(7)?.map(from_millis),
            });
        }
        Ok(())
    }

    pub fn open_intents(&self) -> Result<Vec<OpenIntent>> {
        let mut q = self.conn().prepare(
            "SELECT id, mailbox_id, operation, correlation, created_at, wave_id FROM intents WHERE resolved_at IS NULL ORDER BY id",
        )?;
        let rows = q.query_map(params![], |r| {
            let c: Vec<u8> = r.get(3)?;
            let mut correlation = [0u8; 16];
            if c.len() == 16 {
                correlation.copy_from_slice(&c);
            }
            Ok(OpenIntent {
                id: r.get(0)?,
                mailbox_id: r.get(1)?,
                operation: r.get(2)?,
                correlation,
                created_at: from_millis(r.get(4)?),
                wave_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
