//! `mailwave inventory import`: validate the whole inventory first, then store it in one transaction.

use std::path::{Path, PathBuf};

use super::{BadInput, Cli, exit};
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
    #[arg(required_unless_present = "from_graph", conflicts_with = "from_graph")]
    pub mailboxes: Option<PathBuf>,
    /// Import Microsoft Graph's mailbox usage report instead of a file (needs [tenant] and a
    /// credential; Reports.Read.All).
    #[arg(long)]
    pub(crate) from_graph: bool,
    /// Report period for --from-graph.
    #[arg(long, default_value = "D7", value_parser = ["D7", "D30", "D90", "D180"])]
    pub period: String,
    /// Delegate permissions CSV (columns Mailbox and Delegate).
    #[arg(long)]
    pub delegates: Option<PathBuf>,
    /// A mailbox with more delegation edges than this is a service account, left out of grouping.
    #[arg(long, default_value_t = 50)]
    pub service_account_threshold: u32,
    /// Import the valid rows and write the rejected ones to a report, instead of importing nothing.
    #[arg(long)]
    pub(crate) skip_invalid: bool,
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
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        crate::private::create_dir(parent)?;
    }
    let mut out = csv::Writer::from_writer(crate::private::create(path)?);
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

/// Downloads the usage report to `state/graph-mailbox-usage-<period>.csv` and returns its path.
fn fetch_usage_report(cli: &Cli, period: &str) -> anyhow::Result<PathBuf> {
    use crate::directory::Directory;
    let config = crate::config::Config::load(&cli.config)?;
    let credential = crate::auth::Credential::from_config(&config.tenant)?;
    let clock = cli.clock();
    let policy = config.run.http();
    let runtime = tokio::runtime::Runtime::new()?;
    let csv = runtime.block_on(async {
        let tokens = std::sync::Arc::new(crate::auth::TokenProvider::new(
            policy, &config, credential, clock,
        )?);
        let graph = crate::directory::graph::GraphClient::new(
            crate::directory::graph::RestGraph::new(policy, &config.endpoints.graph, tokens)
                .map_err(BadInput)?,
        );
        anyhow::Ok(graph.mailbox_usage_report(period).await?)
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    inventory::check_not_concealed(&csv).map_err(BadInput)?;
    let dir = cli
        .state
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        crate::private::create_dir(dir)?;
    }
    let path = dir.join(format!("graph-mailbox-usage-{period}.csv"));
    crate::private::write(&path, csv)?;
    outln!(
        "downloaded the {period} mailbox usage report to {}",
        path.display()
    );
    Ok(path)
}

fn import(cli: &Cli, args: &ImportArgs) -> anyhow::Result<i32> {
    let opts = ImportOptions {
        skip_invalid: args.skip_invalid,
        service_account_threshold: args.service_account_threshold,
    };
    let mailboxes = match &args.mailboxes {
        Some(path) => path.clone(),
        None => fetch_usage_report(cli, &args.period)?,
    };
    // Everything is read and validated before the state database is opened: bad input changes nothing.
    let (mut inv, rejected_mailboxes) = inventory::read_mailboxes(&mailboxes, &opts)?;
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
        Some(d) => format!("{} + {}", mailboxes.display(), d.display()),
        None => mailboxes.display().to_string(),
    };
    let report = store.replace_inventory(
        &inv,
        &source,
        rejected,
        &serde_json::to_string(&summary)?,
        cli.clock().now(),
    )?;

    out!("{summary}");
    outln!(
        "stored in {}: {} new, {} updated, {} removed",
        cli.state.display(),
        report.inserted,
        report.updated,
        report.removed
    );
    if !report.retained.is_empty() {
        outln!(
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
            .map(|e| (mailboxes.as_path(), e))
            .chain(
                rejected_delegates
                    .iter()
                    .map(|e| (args.delegates.as_deref().unwrap_or(Path::new("")), e)),
            )
            .collect();
        write_rejected(&path, &rows)?;
        outln!("{rejected} rejected row(s) written to {}", path.display());
    }
    Ok(exit::OK)
}
