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

/// Creates a folder (and its missing parents) that only its owner can open.
pub fn create_dir(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
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
}
