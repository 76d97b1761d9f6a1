//! Move figures (`move_stats`): one row per mailbox from its `Get-MoveRequestStatistics`, written by
//! the run, read by `analyze`, the reports and the forecast.

use rusqlite::{Transaction, params_from_iter, types::Value as Sql};

use super::{Result, Store};
use crate::exchange::figures::{DURATIONS, MoveFigures, STALL_CAUSES, TIMESTAMPS};

/// The figures of one mailbox's move, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRow {
    pub mailbox_id: i64,
    pub collected_at: i64,
    pub figures: MoveFigures,
}

/// A planned mailbox as the forecast starts from it.
#[derive(Debug, Clone)]
pub struct PlanMailbox {
    pub id: i64,
    pub wave_id: i64,
    pub state: super::State,
    pub failure_class: Option<super::FailureClass>,
    /// How far its copy has got, as the service last said.
    pub percent: u8,
    pub size_bytes: u64,
    pub items: u32,
    pub source_database: Option<String>,
}

/// A mailbox's figures with what the inventory and the plan say of it (for reading).
#[derive(Debug, Clone)]
pub struct MoveRow {
    pub row: FigureRow,
    pub address: String,
    pub wave: String,
    /// The inventory's size and source database.
    pub size_bytes: u64,
    pub source_database: Option<String>,
}

/// Writer commands compare equal in tests; figures never hold NaN (the parser drops non-finite
/// numbers), so equality is total.
impl Eq for FigureRow {}

/// The columns after `mailbox_id, collected_at, status`, in the order [`values`] gives them.
fn columns() -> Vec<&'static str> {
    let mut c = vec![
        "total_size",
        "archive_size",
        "bytes_transferred",
        "items_transferred",
    ];
    c.extend(DURATIONS.iter().map(|(_, name)| *name));
    c.extend(STALL_CAUSES.iter().map(|s| s.name));
    c.extend(TIMESTAMPS.iter().map(|(_, name)| *name));
    c.extend(["dcs", "source_server", "source_database", "target_database"]);
    c
}

/// The columns a query selects to rebuild figures with [`read`]: `status` then [`columns`], each
/// prefixed with `alias.`.
pub(crate) fn select_list(alias: &str) -> String {
    std::iter::once("status")
        .chain(columns())
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Figures from a row holding [`select_list`] from column `at` on.
pub(crate) fn read(r: &rusqlite::Row, at: usize) -> rusqlite::Result<MoveFigures> {
    let u = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|n| n.max(0) as u64))
    };
    let mut i = at + 1;
    let mut next = || {
        i += 1;
        i - 1
    };
    let mut fig = MoveFigures {
        status: r.get(at)?,
        total_size: u(next())?,
        archive_size: u(next())?,
        bytes_transferred: u(next())?,
        items_transferred: u(next())?,
        ..MoveFigures::default()
    };
    for d in fig.durations.iter_mut() {
        *d = r.get(next())?;
    }
    for s in fig.stalls.iter_mut() {
        *s = r.get(next())?;
    }
    for t in fig.times.iter_mut() {
        *t = r
            .get::<_, Option<i64>>(next())?
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
    }
    fig.dcs = r.get(next())?;
    fig.source_server = r.get(next())?;
    fig.source_database = r.get(next())?;
    fig.target_database = r.get(next())?;
    Ok(fig)
}

/// The names `report --format csv|json` gives a move's figures (with their units), in the order
/// [`report_values`] gives them.
pub static REPORT_FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let mut c: Vec<String> = [
        "status",
        "total_size_bytes",
        "archive_size_bytes",
        "bytes_transferred",
        "items_transferred",
    ]
    .map(String::from)
    .into();
    c.extend(DURATIONS.iter().map(|(_, name)| format!("{name}_s")));
    c.extend(STALL_CAUSES.iter().map(|s| format!("stalled_{}_s", s.name)));
    c.extend(TIMESTAMPS.iter().map(|(_, name)| name.to_string()));
    c.extend(["dcs", "source_server", "source_database", "target_database"].map(String::from));
    c
});

/// A move's figures as report values: sizes and counts as integers, durations as seconds, times as
/// RFC 3339 text; null where the service said nothing.
pub fn report_values(f: &MoveFigures) -> Vec<serde_json::Value> {
    use serde_json::Value as J;
    let mut out = vec![J::String(f.status.clone())];
    out.extend(cells(f).into_iter().map(|c| match c {
        Cell::Int(v) => v.map_or(J::Null, J::from),
        Cell::Real(v) => v.map_or(J::Null, |x| J::from((x * 1000.0).round() / 1000.0)),
        Cell::Time(v) => v.map_or(J::Null, |t| J::String(t.to_string())),
        Cell::Text(v) => v.map_or(J::Null, J::String),
    }));
    out
}

/// One figure, typed, in the order of [`columns`]: the store and the reports write it their way.
enum Cell {
    Int(Option<u64>),
    Real(Option<f64>),
    Time(Option<jiff::Timestamp>),
    Text(Option<String>),
}

fn cells(f: &MoveFigures) -> Vec<Cell> {
    let mut out = vec![
        Cell::Int(f.total_size),
        Cell::Int(f.archive_size),
        Cell::Int(f.bytes_transferred),
        Cell::Int(f.items_transferred),
    ];
    out.extend(f.durations.iter().map(|d| Cell::Real(*d)));
    out.extend(f.stalls.iter().map(|d| Cell::Real(*d)));
    out.extend(f.times.iter().map(|t| Cell::Time(*t)));
    out.extend(
        [
            &f.dcs,
            &f.source_server,
            &f.source_database,
            &f.target_database,
        ]
        .map(|t| Cell::Text(t.clone())),
    );
    out
}

fn values(f: &MoveFigures) -> Vec<Sql> {
    cells(f)
        .into_iter()
        .map(|c| match c {
            Cell::Int(v) => v.map_or(Sql::Null, |n| Sql::Integer(n.min(i64::MAX as u64) as i64)),
            Cell::Real(v) => v.map_or(Sql::Null, Sql::Real),
            Cell::Time(v) => v.map_or(Sql::Null, |t| Sql::Integer(t.as_millisecond())),
            Cell::Text(v) => v.map_or(Sql::Null, Sql::Text),
        })
        .collect()
}

/// The insert, built once from the column list (the writer runs it for every finished move).
static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let cols = columns();
    format!(
        "INSERT OR REPLACE INTO move_stats (mailbox_id, collected_at, status, {}) VALUES (?1, ?2, ?3, {})",
        cols.join(", "),
        (4..4 + cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// Records (or replaces) a mailbox's figures; called by the writer inside its transaction.
pub(crate) fn write(tx: &Transaction, row: &FigureRow) -> Result<()> {
    let mut v = vec![
        Sql::Integer(row.mailbox_id),
        Sql::Integer(row.collected_at),
        Sql::Text(row.figures.status.clone()),
    ];
    v.extend(values(&row.figures));
    tx.prepare_cached(&INSERT)?.execute(params_from_iter(v))?;
    Ok(())
}

impl Store {
    /// Every mailbox's figures (of one wave), with `f` called once per row (streamed: millions).
    pub fn each_figures(&self, wave: Option<&str>, mut f: impl FnMut(MoveRow)) -> Result<()> {
        let n = 3 + columns().len();
        let sql = format!(
            "SELECT f.mailbox_id, f.collected_at, {}, m.address, w.name, m.size_bytes, m.source_database
             FROM move_stats f JOIN mailboxes m ON m.id = f.mailbox_id
             JOIN mailbox_state s ON s.mailbox_id = f.mailbox_id JOIN waves w ON w.id = s.wave_id
             WHERE ?1 IS NULL OR w.name = ?1 ORDER BY f.mailbox_id",
            select_list("f")
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query([wave])?;
        while let Some(r) = rows.next()? {
            let fig = read(r, 2)?;
            f(MoveRow {
                row: FigureRow {
                    mailbox_id: r.get(0)?,
                    collected_at: r.get(1)?,
                    figures: fig,
                },
                address: r.get(n)?,
                wave: r.get(n + 1)?,
                size_bytes: r.get::<_, i64>(n + 2)?.max(0) as u64,
                source_database: r.get(n + 3)?,
            });
        }
        Ok(())
    }

    /// Mailboxes that completed since `since` (Unix ms) and have no figures yet: a run collects
    /// them (a crash may have lost the queue; the service keeps completed requests).
    pub fn completed_without_figures(&self, since: i64) -> Result<Vec<i64>> {
        let mut stmt = self.conn().prepare(
            "SELECT s.mailbox_id FROM mailbox_state s LEFT JOIN move_stats f ON f.mailbox_id = s.mailbox_id
             WHERE s.state IN (5, 6) AND f.mailbox_id IS NULL AND s.completed_at >= ?1",
        )?;
        let ids = stmt
            .query_map([since], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    }

    /// Every planned mailbox in plan order (wave, then place in it), with what a forecast starts
    /// from: where it stands, how far its copy has got, and what it is made of.
    pub fn each_plan_mailbox(&self, mut f: impl FnMut(PlanMailbox)) -> Result<()> {
        let mut stmt = self.conn().prepare(
            "SELECT s.mailbox_id, s.wave_id, s.state, s.failure_class, s.percent, m.size_bytes, m.item_count, m.source_database
             FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
             ORDER BY w.window_start, s.seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(PlanMailbox {
                id: r.get(0)?,
                wave_id: r.get(1)?,
                state: super::State::from_code(r.get(2)?).unwrap_or(super::State::Failed),
                failure_class: r
                    .get::<_, Option<String>>(3)?
                    .and_then(|c| super::FailureClass::from_name(&c)),
                percent: r.get::<_, Option<i64>>(4)?.unwrap_or(0).clamp(0, 100) as u8,
                size_bytes: r.get::<_, i64>(5)?.max(0) as u64,
                items: r.get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
                source_database: r.get(7)?,
            });
        }
        Ok(())
    }

    /// Keeps a forecast (JSON) as the latest.
    pub fn save_forecast(&self, at: i64, body: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO forecasts (at, body) VALUES (?1, ?2)",
            rusqlite::params![at, body],
        )?;
        Ok(())
    }

    /// The latest forecast: when it was made, and its JSON.
    pub fn latest_forecast(&self) -> Result<Option<(i64, String)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT at, body FROM forecasts ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn figures_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM move_stats", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_are_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("s.db")).unwrap();
        let mut stmt = store
            .conn()
            .prepare("PRAGMA table_info(move_stats)")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut expected = vec!["mailbox_id", "collected_at", "status"];
        expected.extend(columns());
        assert_eq!(names, expected);
        let f = MoveFigures {
            status: "Completed".into(),
            total_size: Some(5),
            ..MoveFigures::default()
        };
        assert_eq!(values(&f).len(), columns().len());
    }
}
