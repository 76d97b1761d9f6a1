//! Plan directories: `schedules/<name>/plan.json` and one Microsoft-format batch CSV (`EmailAddress`)
//! per 2,000 mailboxes of each wave, named `mw-YYYY-MM-DD.bNNN.csv` so they sort by time.
//! The files are the plan: an operator may edit the CSVs (move a mailbox to another wave) and load the
//! directory again.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BATCH_ROWS, PLAN_FORMAT, Plan};
use crate::format::human_bytes;
use crate::text::sheet::{Problem, Sheet};

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}, line {line}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// A batch file that does not read as CSV, named by file and line.
fn problem(path: &Path, p: Problem) -> PlanFileError {
    let (line, message) = match p {
        Problem::File { line, message } | Problem::Row { line, message, .. } => (line, message),
    };
    PlanFileError::Format {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlanFileError + '_ {
    move |source| PlanFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The most bytes a plan.json may have (55 waves of NHSmail's plan take a few hundred kB).
const MAX_PLAN_JSON: u64 = 64 << 20;
/// The most bytes a batch CSV may have (2,000 addresses).
const MAX_BATCH_FILE: u64 = 16 << 20;
/// The most waves a plan may have (ten years of windows).
const MAX_WAVES: usize = 4_000;

/// Whether `name` is a batch file name of the form the planner writes: `mw-YYYY-MM-DD.bNNN.csv`.
pub fn is_batch_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == 22
        && name.starts_with("mw-")
        && name.ends_with(".csv")
        && b[7] == b'-'
        && b[10] == b'-'
        && b.get(13..15) == Some(b".b")
        && [3..7, 8..10, 11..13, 15..18]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit))
}

/// Whether `dir` holds a mailwave plan and nothing else: plan.json and batch files (and what the
/// planner's own swap may leave). Only such a folder is ever replaced.
fn holds_only_a_plan(dir: &Path) -> Result<bool, PlanFileError> {
    let mut has_plan = false;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().map_err(io(dir))?.is_file();
        if name == "plan.json" && is_file {
            has_plan = true;
        } else if !(is_file && is_batch_name(&name)) {
            return Ok(false);
        }
    }
    Ok(has_plan)
}

/// Writes `plan` into `dir`, replacing an earlier plan there as a whole: the new files are written
/// beside it and swapped in, so a crash leaves either the old plan or the new one. A `dir` that
/// holds anything but a mailwave plan is refused, never replaced. Files are private (0600, folders
/// 0700): they name every mailbox.
pub fn write(plan: &Plan, dir: &Path) -> Result<(), PlanFileError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    crate::private::create_dir(parent).map_err(io(parent))?;
    if dir.exists() && !holds_only_a_plan(dir)? {
        return Err(PlanFileError::Format {
            path: dir.to_path_buf(),
            line: 0,
            message: "exists and holds more than a mailwave plan (plan.json and batch files); \
                      choose another --name or --out, it was not touched"
                .into(),
        });
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("plan");
    // Names of the swap's own, unique to this process: nothing that was there is removed.
    let tag = format!("{}.{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let staging = parent.join(format!(".{name}.new.{tag}"));
    let old = parent.join(format!(".{name}.old.{tag}"));
    crate::private::create_dir(&staging).map_err(io(&staging))?;

    let json = serde_json::to_string_pretty(plan).expect("a plan serialises") + "\n";
    let plan_path = staging.join("plan.json");
    crate::private::write(&plan_path, json).map_err(io(&plan_path))?;
    for wave in &plan.waves {
        for (batch, rows) in wave.batches.iter().zip(wave.addresses.chunks(BATCH_ROWS)) {
            let path = staging.join(batch);
            let mut out =
                std::io::BufWriter::new(crate::private::create(&path).map_err(io(&path))?);
            let mut text = String::with_capacity(rows.len() * 40 + 16);
            text.push_str("EmailAddress\n");
            for address in rows {
                text.push_str(address);
                text.push('\n');
            }
            out.write_all(text.as_bytes()).map_err(io(&path))?;
            out.flush().map_err(io(&path))?;
        }
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Reads a file of at most `cap` bytes that must be a plain file in `dir` (not a link, a device
/// or a folder).
fn read_plain(path: &Path, cap: u64) -> Result<Vec<u8>, PlanFileError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    let refuse = |message: String| PlanFileError::Format {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    if !meta.file_type().is_file() {
        return Err(refuse(
            "is not a plain file (a link, a device or a folder); refused".into(),
        ));
    }
    if meta.len() > cap {
        return Err(refuse(format!("is larger than {cap} bytes; refused")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io(path))?, cap + 1),
        &mut bytes,
    )
    .map_err(io(path))?;
    if bytes.len() as u64 > cap {
        return Err(refuse(format!("is larger than {cap} bytes; refused")));
    }
    Ok(bytes)
}

/// Checks what plan.json says of its waves before anything is read or loaded on its word.
fn validate(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let bad = |message: String| PlanFileError::Format {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    if plan.waves.len() > MAX_WAVES {
        return Err(bad(format!(
            "{} waves; at most {MAX_WAVES}",
            plan.waves.len()
        )));
    }
    let mut previous: Option<&super::Wave> = None;
    for w in &plan.waves {
        let wave = |m: &str| bad(format!("wave {:?}: {m}", w.id));
        if w.id != format!("mw-{}", w.date) {
            return Err(wave("its id is not mw-<its date>"));
        }
        if w.window_start_utc != w.window_start.timestamp()
            || w.window_end_utc != w.window_end.timestamp()
            || w.prestage_start_utc != w.prestage_start.timestamp()
        {
            return Err(wave("its UTC and local times disagree"));
        }
        if w.window_end_utc <= w.window_start_utc
            || w.window_end_utc.duration_since(w.window_start_utc)
                > jiff::SignedDuration::from_hours(24)
        {
            return Err(wave("its window does not last between a minute and a day"));
        }
        if w.prestage_start_utc > w.window_start_utc {
            return Err(wave("its pre-stage starts after its window"));
        }
        if w.window_start.date() != w.date {
            return Err(wave("its window does not start on its date"));
        }
        if w.capacity > 10_000_000 {
            return Err(wave("its capacity is not a number of mailboxes"));
        }
        if w.batches.is_empty() || w.batches.len() > 10_000 {
            return Err(wave("it has no batch file, or too many"));
        }
        if let Some(b) = w
            .batches
            .iter()
            .find(|b| !is_batch_name(b) || !b.starts_with(&w.id))
        {
            return Err(wave(&format!(
                "{:?} is not a batch file name of its own (mw-YYYY-MM-DD.bNNN.csv, in the plan folder)",
                crate::format::clip(b, 80)
            )));
        }
        if let Some(p) = previous
            && (p.window_start_utc >= w.window_start_utc || p.seq >= w.seq)
        {
            return Err(wave("the waves are not in order"));
        }
        previous = Some(w);
    }
    Ok(())
}

/// A plan read back from its directory, with each wave's addresses from its batch CSVs.
#[derive(Debug, Clone)]
pub struct PlanDir {
    /// The folder it was read from.
    pub dir: PathBuf,
    pub plan: Plan,
    /// SHA-256 over plan.json and every batch file, in order: the same files give the same digest.
    pub(crate) digest: String,
    /// Where each address came from, for error messages, in the order of the waves' addresses:
    /// (index into the wave's `batches`, line).
    pub rows: Vec<(u32, u64)>,
}

pub fn read(dir: &Path) -> Result<PlanDir, PlanFileError> {
    let plan_path = dir.join("plan.json");
    let bytes = read_plain(&plan_path, MAX_PLAN_JSON)?;
    let mut plan: Plan = serde_json::from_slice(&bytes).map_err(|e| PlanFileError::Format {
        path: plan_path.clone(),
        line: e.line() as u64,
        message: e.to_string(),
    })?;
    if plan.format != PLAN_FORMAT {
        return Err(PlanFileError::Format {
            path: plan_path,
            line: 1,
            message: format!(
                "plan format {} is not one this mailwave reads ({PLAN_FORMAT})",
                plan.format
            ),
        });
    }
    validate(&plan, &plan_path)?;
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    let mut rows = Vec::new();
    for wave in plan.waves.iter_mut() {
        wave.addresses.clear();
        for (b, batch) in wave.batches.iter().enumerate() {
            let path = dir.join(batch);
            let content = read_plain(&path, MAX_BATCH_FILE)?;
            hasher.update(batch.as_bytes());
            hasher.update(&content);
            let mut sheet = Sheet::from_bytes(&content).map_err(|p| problem(&path, p))?;
            let Some(col) = sheet.column(&["EmailAddress"]) else {
                return Err(PlanFileError::Format {
                    path,
                    line: 1,
                    message: "expected the header EmailAddress".into(),
                });
            };
            while let Some(row) = sheet.next_row() {
                let row = row.map_err(|p| problem(&path, p))?;
                let address = row.get(col);
                if address.is_empty() {
                    continue;
                }
                wave.addresses.push(address.into_owned());
                rows.push((b as u32, row.line));
            }
        }
    }
    let digest = hasher.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    Ok(PlanDir {
        dir: dir.to_path_buf(),
        plan,
        digest,
        rows,
    })
}

/// The table `mailwave plan` prints.
pub(crate) fn summary_table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4}  {:<14} {:<3} {:<13} {:>8} {:>10} {:>5} {:>6}",
        "wave", "id", "day", "window", "mboxes", "size", "orgs", "dbs"
    );
    for w in &plan.waves {
        let window = format!(
            "{:02}:{:02}-{:02}:{:02}{}",
            w.window_start.hour(),
            w.window_start.minute(),
            w.window_end.hour(),
            w.window_end.minute(),
            if w.window_start.offset() != w.window_end.offset() {
                "*"
            } else {
                ""
            }
        );
        let day = format!("{:?}", w.date.weekday());
        let _ = writeln!(
            out,
            "{:>4}  {:<14} {:<3} {:<13} {:>8} {:>10} {:>5} {:>6}{}",
            w.seq,
            w.id,
            &day[..3],
            window,
            w.mailboxes,
            human_bytes(w.bytes),
            w.organisations.len(),
            w.source_databases,
            if w.pilot { "  pilot" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "total {} mailboxes, {} in {} waves ({} excluded)",
        plan.mailboxes,
        human_bytes(plan.bytes),
        plan.waves.len(),
        plan.excluded
    );
    if let Some(last) = plan.last_date() {
        let lb = plan.lower_bound_waves.max(1);
        let over = plan.waves.len() as f64 / lb as f64 - 1.0;
        let _ = writeln!(
            out,
            "last cut-over {last}; lower bound {} waves (last {}); plan is {:.1}% over it",
            plan.lower_bound_waves,
            plan.lower_bound_last_date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            over.max(0.0) * 100.0
        );
    }
    if plan
        .waves
        .iter()
        .any(|w| w.window_start.offset() != w.window_end.offset())
    {
        let _ = writeln!(out, "* the clocks change during this window");
    }
    for s in &plan.split_groups {
        let _ = writeln!(
            out,
            "note: an affinity group of {} mailboxes (with {}) is larger than any window and is split over {}",
            s.mailboxes,
            s.member,
            s.waves.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_are_plain_and_of_one_form() {
        assert!(is_batch_name("mw-2027-01-04.b001.csv"));
        for bad in [
            "mw-2027-01-04.b001.csv.bak",
            "../mw-2027-01-04.b001.csv",
            "mw-2027-01-04/b001.csv",
            "mw-2027-1-04.b0001.csv",
            "/dev/zero",
            "mw-2027-01-04.bxyz.csv",
            "",
        ] {
            assert!(!is_batch_name(bad), "{bad}");
        }
    }
}
