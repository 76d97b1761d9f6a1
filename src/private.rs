//! Files and folders only their owner can read. Everything mailwave writes names mailboxes (the
//! database, plans, reports, the usage report, rejected rows, logs), so files are created 0600 and
//! folders 0700, and a file that exists with a wider mode is tightened when mailwave writes it.
//! A leaf.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(unix)]
fn tighten_file(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_file(_: &File) -> io::Result<()> {
    Ok(())
}

fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Creates (or truncates) a file readable by its owner only.
pub fn create(path: &Path) -> io::Result<File> {
    let f = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    tighten_file(&f)?;
    Ok(f)
}

/// Opens a file for appending, creating it readable by its owner only.
pub fn append(path: &Path) -> io::Result<File> {
    let f = options().append(true).create(true).open(path)?;
    tighten_file(&f)?;
    Ok(f)
}

/// Writes a whole file readable by its owner only.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    io::Write::write_all(&mut create(path)?, bytes.as_ref())
}

/// Opens `path` only if it is a plain file: never through a link, and never waiting on a FIFO or
/// a device (a plain open of a FIFO waits for a writer, forever). With `write`, a missing file is
/// created readable by its owner only; nothing is truncated. Anything else is an error of kind
/// `InvalidInput` saying what it is.
pub fn open_plain(path: &Path, write: bool) -> io::Result<File> {
    let mut o = options();
    if write {
        o.write(true).create(true);
    } else {
        o.read(true);
    }
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        std::os::unix::fs::OpenOptionsExt::custom_flags(
            &mut o,
            (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32,
        );
    }
    let f = o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a link; links are not followed",
            );
        }
        e
    })?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            if kind.is_dir() {
                "is a folder, not a plain file"
            } else {
                "is not a plain file (a FIFO, a socket or a device)"
            },
        ));
    }
    // Reads and writes of a plain file never block; the flag only mattered for the open.
    Ok(f)
}

/// Creates a folder (and its missing parents) that only its owner can open.
pub fn create_dir(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

/// A file's permission bits and owner, following links (what `chmod` and `chown` change).
#[cfg(unix)]
fn mode_and_owner(path: &Path) -> Result<(u32, u32), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((m.mode() & 0o7777, m.uid()))
}

#[cfg(unix)]
fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Refuses, as ssh does, a file that holds where the credential goes (the configuration) when
/// someone else could change it: writable by group or others, or owned by another user (root
/// aside). Whoever can change it can point `authority` at a listener of theirs.
pub fn check_others_cannot_write(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        let (mode, owner) = mode_and_owner(path)?;
        let p = path.display();
        if owner != me() && owner != 0 {
            return Err(format!(
                "{p} belongs to another user (uid {owner}): whoever owns it can send the \
                 credential elsewhere. Take it over (`chown $USER {p}`) or copy it"
            ));
        }
        if mode & 0o022 != 0 {
            return Err(format!(
                "{p} can be changed by group or others (mode {mode:04o}): whoever can change it \
                 can send the credential elsewhere. Fix: `chmod go-w {p}`"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuses, as ssh does, a private key file that group or others can read.
pub fn check_others_cannot_read(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        let (mode, _) = mode_and_owner(path)?;
        if mode & 0o077 != 0 {
            let p = path.display();
            return Err(format!(
                "{p} holds the private key and can be read by group or others (mode {mode:04o}). \
                 Fix: `chmod 600 {p}`"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes sure the folder that holds the state database is private: one the user owns is narrowed
/// to 0700 (returning the mode it had, for a log line); one that belongs to someone else is
/// accepted only if group and others cannot write to it (they could replace the database or
/// its lock).
pub fn secure_folder(dir: &Path) -> Result<Option<u32>, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (mode, owner) = mode_and_owner(dir)?;
        let d = dir.display();
        if owner == me() {
            if mode & 0o077 == 0 {
                return Ok(None);
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| format!("{d}: cannot narrow it to its owner: {e}"))?;
            return Ok(Some(mode));
        }
        if mode & 0o022 != 0 {
            return Err(format!(
                "{d} belongs to another user (uid {owner}) and group or others can write to it \
                 (mode {mode:04o}): they could replace the state database. Keep the state in a \
                 folder of your own (--state)"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(None)
}

/// Narrows an existing file to its owner (a database made by an older mailwave, or by hand). By
/// path, without opening it: a descriptor opened and closed on a database would drop this
/// process's SQLite locks on it.
pub fn tighten(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode(m.permissions().mode() & 0o700),
            ),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_folders_are_private_and_wider_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        let f = sub.join("report.md");
        write(&f, "x").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, "y").unwrap();
        assert_eq!(mode(&f), 0o600, "rewritten: tightened");
        let log = sub.join("run.log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o664)).unwrap();
        drop(append(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
    }

    #[test]
    fn only_a_plain_file_is_opened_never_a_link_a_fifo_or_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "mark").unwrap();
        assert!(open_plain(&plain, false).is_ok());
        let made = dir.path().join("made");
        drop(open_plain(&made, true).unwrap());
        assert_eq!(mode(&made), 0o600);
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        // Each returns at once (a FIFO opened plainly would wait for a writer, for ever).
        for (what, path) in [
            ("fifo", &fifo),
            ("link", &link),
            ("folder", &dir.path().to_path_buf()),
        ] {
            for write in [false, true] {
                let e = open_plain(path, write).unwrap_err();
                // For writing, the kernel may refuse first (a FIFO without a reader, a folder).
                assert!(
                    e.kind() == io::ErrorKind::InvalidInput
                        || (write && what != "link" && e.raw_os_error().is_some()),
                    "{what}, write {write}: {e:?}"
                );
            }
        }
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "mark");
        let gone = open_plain(&dir.path().join("gone"), false).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn like_ssh_a_config_others_can_change_and_a_key_others_can_read_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mailwave.toml");
        std::fs::write(&config, "").unwrap();
        for ok in [0o600, 0o644, 0o640, 0o400] {
            chmod(&config, ok);
            assert!(check_others_cannot_write(&config).is_ok(), "{ok:o}");
        }
        for bad in [0o664, 0o646, 0o666] {
            chmod(&config, bad);
            let e = check_others_cannot_write(&config).unwrap_err();
            assert!(
                e.contains(&format!("`chmod go-w {}`", config.display())),
                "{e}"
            );
            assert!(e.contains(&format!("{bad:04o}")), "{e}");
        }
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "").unwrap();
        chmod(&key, 0o600);
        assert!(check_others_cannot_read(&key).is_ok());
        for bad in [0o644, 0o640, 0o604] {
            chmod(&key, bad);
            let e = check_others_cannot_read(&key).unwrap_err();
            assert!(e.contains(&format!("`chmod 600 {}`", key.display())), "{e}");
        }
        assert!(check_others_cannot_read(&dir.path().join("gone.pem")).is_err());
    }

    #[test]
    fn a_state_folder_of_ones_own_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        chmod(&state, 0o755);
        assert_eq!(secure_folder(&state).unwrap(), Some(0o755));
        assert_eq!(mode(&state), 0o700);
        assert_eq!(secure_folder(&state).unwrap(), None, "already private");
    }
}
