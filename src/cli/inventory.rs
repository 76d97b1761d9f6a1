//! `mailwave inventory import`: validate the whole inventory first, then store it in one transaction.

use std::path::{Path, PathBuf};

use super::{Cli, exit};
use crate::inventory::summary::ImportSummary;
use crate::inventory::{self, ImportOptions, RowError, groups};
use crate::store::Store;
use crate::store::lock::RunLock;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Import mailboxes from CSV (Microsoft batch CSV, Graph usage report, or mailwave's own form).
    Import(ImportArgs),
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The mailbox CSV. Columns are found by header name.
    pub mailboxes: PathBuf,
    /// Delegate permissions CSV (columns Mailbox and Delegate).
    #[arg(long)]
    pub delegates: Option<PathBuf>,
    /// A mailbox with more delegation edges than this is a service account, left out of grouping.
    #[arg(long, default_value_t = 50)]
    pub service_account_threshold: u32,
    /// Import the valid rows and write the rejected ones to a report, instead of importing nothing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Where the rejected-rows report goes (default: next to the state database).
    #[arg(long)]
    pub rejected: Option<PathBuf>,
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    match command {
        Command::Import(args) => import(cli, args),
    }
}

fn write_rejected(path: &Path, rows: &[(&Path, &RowError)]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(["file", "line", "column", "reason", "row"])?;
    for (file, e) in rows {
        out.write_record([
            &file.display().to_string(),
            &e.line.to_string(),
            &e.column,
            &e.message,
            &e.raw,
        ])?;
    }
    out.flush()?;
    Ok(())
}

fn import(cli: &Cli, args: &ImportArgs) -> anyhow::Result<i32> {
    let opts = ImportOptions {
        skip_invalid: args.skip_invalid,
        service_account_threshold: args.service_account_threshold,
    };
    // Everything is read and validated before the state database is opened: bad input changes nothing.
    let (mut inv, rejected_mailboxes) = inventory::read_mailboxes(&args.mailboxes, &opts)?;
    let rejected_delegates = match &args.delegates {
        Some(path) => inventory::read_delegates(path, &mut inv, &opts)?,
        None => Vec::new(),
    };
    groups::assign(&mut inv, opts.service_account_threshold);
    let rejected = (rejected_mailboxes.len() + rejected_delegates.len()) as u64;
    let summary = ImportSummary::of(&inv, rejected);

    let _lock = RunLock::acquire(&cli.state, "mailwave inventory import")?;
    let mut store = Store::open(&cli.state)?;
    let source = match &args.delegates {
        Some(d) => format!("{} + {}", args.mailboxes.display(), d.display()),
        None => args.mailboxes.display().to_string(),
    };
    let report = store.replace_inventory(
        &inv,
        &source,
        rejected,
        &serde_json::to_string(&summary)?,
        jiff::Timestamp::now(),
    )?;

    print!("{summary}");
    println!(
        "stored in {}: {} new, {} updated, {} removed",
        cli.state.display(),
        report.inserted,
        report.updated,
        report.removed
    );
    if !report.retained.is_empty() {
        println!(
            "{} mailbox(es) no longer in the inventory are already planned or moving; kept and excluded from the next plan (first: {})",
            report.retained.len(),
            report.retained[0]
        );
    }
    if rejected > 0 {
        let path = args.rejected.clone().unwrap_or_else(|| {
            cli.state
                .parent()
                .unwrap_or(Path::new("."))
                .join("inventory-rejected.csv")
        });
        let rows: Vec<(&Path, &RowError)> = rejected_mailboxes
            .iter()
            .map(|e| (args.mailboxes.as_path(), e))
            .chain(
                rejected_delegates
                    .iter()
                    .map(|e| (args.delegates.as_deref().unwrap_or(Path::new("")), e)),
            )
            .collect();
        write_rejected(&path, &rows)?;
        println!("{rejected} rejected row(s) written to {}", path.display());
    }
    Ok(exit::OK)
}
