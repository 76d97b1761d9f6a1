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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlanFileError + '_ {
    move |source| PlanFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `plan` into `dir` (replacing an earlier plan there as a whole: the new files are written
/// beside it and swapped in, so a crash leaves either the old plan or the new one).
pub fn write(plan: &Plan, dir: &Path) -> Result<(), PlanFileError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("plan");
    let staging = parent.join(format!(".{name}.new"));
    let old = parent.join(format!(".{name}.old"));
    for stale in [&staging, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(io(stale))?;
        }
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;

    let json = serde_json::to_string_pretty(plan).expect("a plan serialises") + "\n";
    let plan_path = staging.join("plan.json");
    std::fs::write(&plan_path, json).map_err(io(&plan_path))?;
    for wave in &plan.waves {
        for (batch, rows) in wave.batches.iter().zip(wave.addresses.chunks(BATCH_ROWS)) {
            let path = staging.join(batch);
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
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
    let bytes = std::fs::read(&plan_path).map_err(io(&plan_path))?;
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
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    let mut rows = Vec::new();
    for wave in plan.waves.iter_mut() {
        wave.addresses.clear();
        for (b, batch) in wave.batches.iter().enumerate() {
            let path = dir.join(batch);
            let content = std::fs::read(&path).map_err(io(&path))?;
            hasher.update(batch.as_bytes());
            hasher.update(&content);
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .flexible(true)
                .from_reader(content.as_slice());
            let header_ok = reader
                .headers()
                .map(|h| h.iter().any(|c| c.eq_ignore_ascii_case("EmailAddress")))
                .unwrap_or(false);
            if !header_ok {
                return Err(PlanFileError::Format {
                    path,
                    line: 1,
                    message: "expected the header EmailAddress".into(),
                });
            }
            for record in reader.records() {
                let record = record.map_err(|e| PlanFileError::Format {
                    path: path.clone(),
                    line: e.position().map(|p| p.line()).unwrap_or(0),
                    message: e.to_string(),
                })?;
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let Some(address) = record.get(0).filter(|a| !a.is_empty()) else {
                    continue;
                };
                wave.addresses.push(address.to_string());
                rows.push((b as u32, line));
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
