//! The state store: SQLite, the single source of truth for where every mailbox stands.
//!
//! One writer at a time (the run lock, and inside a run the writer thread); any number of readers
//! with read-only connections, which WAL mode never blocks.

pub mod actions;
pub mod attention;
pub mod figures;
mod inventory;
pub mod lifecycle;
pub mod lock;
pub mod notices;
mod plan_load;
pub mod records;
mod report;
pub mod run_view;
pub mod status;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use inventory::ReplaceReport;
pub use lifecycle::{FailureClass, State};
pub use plan_load::LoadReport;
pub use report::{Attention, FailureReason, RunRecord};

/// Schema migrations, applied in order on open. `PRAGMA user_version` holds the last one applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_intent_wave.sql"),
    include_str!("migrations/0003_actions.sql"),
    include_str!("migrations/0004_move_stats.sql"),
    include_str!("migrations/0005_notices.sql"),
    include_str!("migrations/0006_action_split.sql"),
    include_str!("migrations/0007_notice_answers.sql"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: not a mailwave state database (not an SQLite file); refusing to touch it", path.display())]
    NotSqlite { path: PathBuf },
    #[error("{}: the state database is damaged ({message}); it was not changed. Restore it from a backup or move it aside", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: written by a newer mailwave (schema {found}; this one knows up to {known}); upgrade mailwave", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{}: no state database here (only `mailwave init` and `mailwave inventory import` make one)", path.display())]
    Missing { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    UnsafeFolder(String),
    #[error("illegal transition for {mailbox}: {from} -> {to}")]
    IllegalTransition {
        mailbox: String,
        from: String,
        to: State,
    },
    #[error("no mailbox {0} in the state database")]
    UnknownMailbox(String),
    #[error("{file}, line {line}: {message}")]
    PlanRow {
        file: String,
        line: u64,
        message: String,
    },
    #[error("state commit failed: {0}")]
    CommitFailed(String),
    #[error("the state writer has stopped")]
    WriterGone,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch: how the store keeps time.
pub(crate) fn millis(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

pub fn from_millis(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt) | Some(NotADatabase) => StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

/// Refuses anything at `path` that is not an SQLite file, before SQLite may write to it; `false`
/// when there is no file.
///
/// The check goes through a read-only SQLite connection, never a plain file descriptor: POSIX
/// locks belong to the process, so opening and closing any descriptor on the database drops every
/// SQLite lock this process holds on it. A run's writer would then look absent to other processes,
/// and the next one to close its connection (an operator's sqlite3, a backup) would checkpoint and
/// delete the WAL under it, taking every later commit with it. SQLite's own connections share their
/// locks within the process and keep them.
fn check_header(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => return Ok(true), // SQLite treats an empty file as a new database
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(path, e))?;
    match conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(true),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            Err(StoreError::NotSqlite {
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(classify(path, e)),
    }
}

/// Makes the folder that holds the database the operator's alone before anything is written in
/// it (see [`crate::private::secure_folder`]): narrowed if it is theirs, refused if others can
/// write to it.
pub(crate) fn secure_state_folder(db: &Path) -> Result<()> {
    let folder = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match crate::private::secure_folder(folder) {
        Ok(Some(was)) => tracing::info!(
            folder = %folder.display(),
            "narrowed the state folder to its owner (0700, it was {was:04o}): it holds the database that names every mailbox"
        ),
        Ok(None) => {}
        Err(m) => return Err(StoreError::UnsafeFolder(m)),
    }
    Ok(())
}

/// Creates the database file readable by its owner only: it names every mailbox in the estate.
fn create_private(path: &Path) -> Result<()> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        crate::private::create_dir(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

fn configure(conn: &Connection, path: &Path, write: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if write {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| classify(path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Bulk imports and plan loads touch millions of rows in one transaction; a larger page cache keeps
    // them from spilling to the WAL before commit.
    conn.pragma_update(None, "cache_size", if write { -262_144 } else { -65_536 })?; // 256 / 64 MiB
    Ok(())
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(path, e))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found = schema_version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| classify(path, e))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A connection to the state database.
pub struct Store {
    path: PathBuf,
    conn: Connection,
}

impl Store {
    /// Creates the database (readable by its owner only) when there is none, then opens it as
    /// [`Store::open`] does. Only what starts a project's database calls it: `init`, the first
    /// `inventory import`, the demo.
    pub fn create(path: &Path) -> Result<Store> {
        if !check_header(path)? {
            create_private(path)?;
        }
        Store::open(path)
    }

    /// Opens an existing database for writing and brings its schema up to date; refuses when there
    /// is none, so that a command run from the wrong folder never leaves an empty one behind.
    pub fn open(path: &Path) -> Result<Store> {
        if !check_header(path)? {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        secure_state_folder(path)?;
        // A database made by an older mailwave, or copied by hand, may be readable by others.
        crate::private::tighten(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(path, e))?;
        configure(&conn, path, true)?;
        migrate(&mut conn, path)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Opens an existing database for reading only (status, watch, reports). An older schema is
    /// migrated first, through a short write connection, under the run lock (a run of the older
    /// mailwave that holds it is not changed under its feet).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !check_header(path)? {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let open = || {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| classify(path, e))
        };
        let conn = open()?;
        let found = schema_version(&conn, path)?;
        if found != SCHEMA_VERSION {
            drop(conn);
            let _lock = lock::RunLock::acquire(path, "mailwave (schema upgrade)")?;
            drop(Store::open(path)?);
            let conn = open()?;
            configure(&conn, path, false)?;
            return Ok(Store {
                path: path.to_path_buf(),
                conn,
            });
        }
        configure(&conn, path, false)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// SQLite's own consistency check; `ok` when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn mailbox_id(&self, address: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM mailboxes WHERE address = ?1",
                params![address],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the start of a run (or any command that changes the store).
    pub(crate) fn begin_run(&self, command: &str, now: jiff::Timestamp) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (started_at, host, pid, command) VALUES (?1, ?2, ?3, ?4)",
            params![millis(now), lock::host_name(), std::process::id(), command],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Closes run rows left open by processes that died (the caller holds the run lock, so no live
    /// run owns them); returns how many.
    pub(crate) fn close_abandoned_runs(&self, now: jiff::Timestamp) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET ended_at = ?1, outcome = 'interrupted' WHERE ended_at IS NULL",
            params![millis(now)],
        )?)
    }

    pub(crate) fn end_run(
        &self,
        run: i64,
        now: jiff::Timestamp,
        outcome: &str,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET ended_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
            params![run, millis(now), outcome, summary],
        )?;
        Ok(())
    }
}

/// Applies one transition inside an open transaction: checks it against the lifecycle table, updates
/// the mailbox's state row and appends its event. Every write path goes through here.
pub(crate) fn write_transition(
    tx: &Connection,
    t: &writer::Transition,
    from: State,
    run: Option<i64>,
) -> Result<()> {
    if !from.can_become(t.to) {
        let mailbox = tx
            .query_row(
                "SELECT address FROM mailboxes WHERE id = ?1",
                [t.mailbox],
                |r| r.get::<_, String>(0),
            )
            .unwrap_or_else(|_| format!("mailbox #{}", t.mailbox));
        return Err(StoreError::IllegalTransition {
            mailbox,
            from: from.name().into(),
            to: t.to,
        });
    }
    let (class, error) = match &t.failure {
        Some((c, msg)) => (Some(c.name()), Some(msg.as_str())),
        None => (None, None),
    };
    let at = t.at;
    let mut update = tx.prepare_cached(
        "UPDATE mailbox_state SET state = ?2, updated_at = ?3,
            attempts = attempts + ?4,
            failure_class = CASE WHEN ?2 = 7 THEN ?5 ELSE NULL END,
            last_error = COALESCE(?6, last_error),
            request_id = COALESCE(?7, request_id),
            submitted_at = CASE WHEN ?2 = 1 AND ?4 = 1 THEN ?3 ELSE submitted_at END,
            synced_at = CASE WHEN ?2 = 3 AND (?4 = 1 OR synced_at IS NULL) THEN ?3
                             WHEN ?4 = 1 THEN NULL ELSE synced_at END,
            completed_at = CASE WHEN ?2 IN (5, 6) THEN ?3 WHEN ?4 = 1 THEN NULL ELSE completed_at END
         WHERE mailbox_id = ?1",
    )?;
    update.execute(params![
        t.mailbox,
        t.to.code(),
        at,
        // Attempts: every new move request (submitted from planned), and every resume of a
        // failed move. A new attempt starts its times afresh, so a mailbox's times are its latest
        // attempt's and never run backwards. A release keeps the request it had: the same attempt,
        // whose times (and the service's figures for it) stand.
        i64::from((t.to == State::Submitted && from == State::Planned) || t.cause == "resume"),
        class,
        error,
        t.request_id
    ])?;
    let mut event = tx.prepare_cached(
        "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail, correlation, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    event.execute(params![
        at,
        t.mailbox,
        from.code(),
        t.to.code(),
        t.cause,
        t.detail.as_deref().or(error),
        t.correlation.as_ref().map(|c| c.as_slice()),
        run
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_sqlite_files_and_leaves_them_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailwave.db");
        std::fs::write(&path, b"this is a spreadsheet, not a database").unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"this is a spreadsheet, not a database"
        );
    }

    #[test]
    fn refuses_a_damaged_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailwave.db");
        drop(Store::create(&path).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().skip(100) {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "never overwritten");
    }

    #[cfg(unix)]
    #[test]
    fn new_database_is_private_and_migrated() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/mailwave.db");
        assert!(matches!(
            Store::open(&path).err(),
            Some(StoreError::Missing { .. })
        ));
        assert!(!path.exists() && !path.parent().unwrap().exists());
        let store = Store::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(schema_version(store.conn(), &path).unwrap(), SCHEMA_VERSION);
        let journal: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailwave.db");
        let store = Store::create(&path).unwrap();
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }

    #[test]
    fn events_are_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("m.db")).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO events (at, mailbox_id, to_state, cause) VALUES (1, 1, 0, 'x')",
                [],
            )
            .unwrap();
        assert!(
            store
                .conn()
                .execute("UPDATE events SET cause = 'y'", [])
                .is_err()
        );
        assert!(store.conn().execute("DELETE FROM events", []).is_err());
    }
}
