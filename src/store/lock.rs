//! The run lock: one writer per state database. It is an exclusive file lock on `<db>.lock`, which the
//! kernel releases when its process dies however it dies, so a lock left by a killed run is simply
//! free. The file also names its holder (host, pid, since) for the error a second writer gets, and a
//! holder that left its name behind without its lock is reported as taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The holder recorded by a process that died holding the lock, if any.
    pub(crate) taken_over_from: Option<String>,
}

/// The lock file of `db`, from the database's real path: two names for one database (a symlink,
/// `./state` and `state`) must find the same lock.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    beside(db, ".lock")
}

/// A file named after the database with `suffix`, beside the database's real path (its folder
/// resolved through links, so every name for one database finds the same file).
pub(crate) fn beside(db: &Path, suffix: &str) -> PathBuf {
    let real = std::fs::canonicalize(db).unwrap_or_else(|_| {
        let parent = db.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent
            .and_then(|p| std::fs::canonicalize(p).ok())
            .or_else(|| parent.map(Path::to_path_buf))
            .unwrap_or_default();
        parent.join(db.file_name().unwrap_or_default())
    });
    let mut name = real
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    real.with_file_name(name)
}

/// Who holds the lock on `db` now, as its holder wrote it ("run on host h, pid n, since t"), read
/// without touching the lock. A name left behind by a process on this host that is gone is ignored.
pub fn holder(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock_path(db)).ok()?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let on_this_host = text.contains(&format!("on host {}, ", host_name()));
    let pid = text
        .split(", pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if on_this_host && !Path::new(&format!("/proc/{pid}")).exists() => None,
        _ => Some(text.to_string()),
    }
}

impl RunLock {
    /// Takes the lock for `db`, or fails naming who holds it.
    pub fn acquire(db: &Path, command: &str) -> Result<RunLock> {
        let path = lock_path(db);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            crate::private::create_dir(parent).map_err(io)?;
        }
        super::secure_state_folder(db)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked(format!(
                    "{} is in use by another mailwave: {}. Wait for it to finish, or stop it (Ctrl-C or SIGTERM) first",
                    db.display(),
                    if holder.is_empty() {
                        "holder unknown"
                    } else {
                        holder
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(io)?;
        let previous = previous.trim().to_string();
        let me = format!(
            "{command} on host {}, pid {}, since {}",
            host_name(),
            std::process::id(),
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or(jiff::Timestamp::now())
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(RunLock {
            file,
            path,
            taken_over_from: (!previous.is_empty()).then_some(previous),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear the holder's name so the next run does not report a take-over; the kernel drops the
        // lock with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mailwave.db");
        let first = RunLock::acquire(&db, "mailwave run").unwrap();
        assert!(first.taken_over_from.is_none());
        let err = RunLock::acquire(&db, "mailwave run")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by another mailwave"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = RunLock::acquire(&db, "mailwave run").unwrap();
        assert!(
            again.taken_over_from.is_none(),
            "a clean release leaves no name behind"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_second_name_for_the_same_database_finds_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let db = dir.path().join("state/mailwave.db");
        std::fs::write(&db, b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("state"), dir.path().join("alias")).unwrap();
        let _first = RunLock::acquire(&db, "mailwave run").unwrap();
        let err = RunLock::acquire(&dir.path().join("alias/mailwave.db"), "mailwave run")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by another mailwave"), "{err}");
        let err = RunLock::acquire(&dir.path().join("state/../state/mailwave.db"), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use"), "{err}");
    }

    #[test]
    fn a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mailwave.db");
        // What a killed process leaves: its name in the file, and no lock (the kernel released it).
        std::fs::write(
            lock_path(&db),
            "mailwave run on host h, pid 999999, since then",
        )
        .unwrap();
        let lock = RunLock::acquire(&db, "mailwave run").unwrap();
        assert_eq!(
            lock.taken_over_from.as_deref(),
            Some("mailwave run on host h, pid 999999, since then")
        );
    }
}
