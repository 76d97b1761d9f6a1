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
    /// Shows what changes against the stored inventory, and refuses to drop more than
    /// --max-drop of its mailboxes or delegations without --replace.
    Import(ImportArgs),
    /// What is stored: mailboxes, sizes, organisations, delegations, affinity groups, the last import.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
    /// Sizes and item counts from Graph's mailbox usage report CSV (Microsoft 365 admin center:
    /// Reports > Usage > Exchange > Mailbox usage > Export), matched by user principal name or
    /// address; for a mailbox list without sizes, such as Microsoft's batch CSV.
    #[arg(long, value_name = "CSV", conflicts_with = "from_graph")]
    pub sizes: Option<PathBuf>,
    /// A mailbox with more delegation edges than this is a service account, left out of grouping.
    #[arg(long, default_value_t = 50)]
    pub service_account_threshold: u32,
    /// Import the valid rows and write the rejected ones to a report, instead of importing nothing.
    #[arg(long)]
    pub(crate) skip_invalid: bool,
    /// Where the rejected-rows report goes (default: next to the state database).
    #[arg(long)]
    pub rejected: Option<PathBuf>,
    /// Say what would change, and store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept a re-import that drops more than --max-drop of the stored mailboxes or delegations.
    #[arg(long)]
    pub replace: bool,
    /// The share of stored mailboxes or delegations (percent) a re-import may drop without --replace.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    pub max_drop: f64,
    /// Without --delegates, drop the stored delegations instead of keeping them.
    #[arg(long, conflicts_with = "delegates")]
    pub drop_delegates: bool,
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    match command {
        Command::Import(args) => import(cli, args),
        Command::Show { json } => show(cli, *json),
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
        let file = file.display().to_string();
        let line = e.line.to_string();
        // Rows are what the file held: a spreadsheet shows a formula in them, never runs it.
        out.write_record(
            [&file, &line, &e.column, &e.message, &e.raw].map(|c| crate::text::sheet_field(c)),
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Downloads the usage report to `state/graph-mailbox-usage-<period>.csv` and returns its path.
fn fetch_usage_report(cli: &Cli, period: &str) -> anyhow::Result<PathBuf> {
    use crate::directory::Directory;
    let config = crate::config::Config::load(&cli.config)?;
    let credential = crate::auth::Credential::from_config(&config)?;
    let clock = cli.clock();
    let policy = config.run.http();
    let dir = cli
        .state
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        crate::private::create_dir(dir)?;
    }
    let path = dir.join(format!("graph-mailbox-usage-{period}.csv"));
    // The report (hundreds of MB for millions of mailboxes) goes to a private file as it
    // arrives, never into memory, and replaces the last one only once it is whole and usable.
    let partial = dir.join(format!(
        ".graph-mailbox-usage-{period}.csv.{}.part",
        std::process::id()
    ));
    let fetched = (|| {
        let mut file = std::io::BufWriter::new(crate::private::create(&partial)?);
        let runtime = tokio::runtime::Runtime::new()?;
        let got = runtime.block_on(async {
            let tokens = std::sync::Arc::new(crate::auth::TokenProvider::new(
                policy, &config, credential, clock,
            )?);
            let graph = crate::directory::graph::GraphClient::new(
                crate::directory::graph::RestGraph::new(policy, &config.endpoints.graph, tokens)
                    .map_err(BadInput)?,
            );
            anyhow::Ok(graph.mailbox_usage_report(period, &mut file).await?)
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        got?;
        std::io::Write::flush(&mut file)?;
        drop(file);
        inventory::check_not_concealed(std::fs::File::open(&partial)?).map_err(BadInput)?;
        std::fs::rename(&partial, &path)?;
        anyhow::Ok(())
    })();
    if fetched.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    fetched?;
    outln!(
        "downloaded the {period} mailbox usage report to {}",
        super::project::absolute(&path).display()
    );
    Ok(path)
}

fn import(cli: &Cli, args: &ImportArgs) -> anyhow::Result<i32> {
    let mut opts = ImportOptions {
        skip_invalid: args.skip_invalid,
        service_account_threshold: args.service_account_threshold,
        ..Default::default()
    };
    if !(0.0..=100.0).contains(&args.max_drop) {
        return Err(BadInput(format!("--max-drop: {} is not a percentage", args.max_drop)).into());
    }
    let mailboxes = match &args.mailboxes {
        Some(path) => path.clone(),
        None => fetch_usage_report(cli, &args.period)?,
    };
    // Everything is read and validated before the state database is opened: bad input changes nothing.
    let (mut inv, rejected_mailboxes) = inventory::read_mailboxes(&mailboxes, &opts)?;
    let sizes = match &args.sizes {
        Some(path) => Some((path, inventory::sizes::merge(path, &mut inv)?)),
        None => None,
    };
    let stored = stored_inventory(&cli.state)?;
    if let Some(stored) = &stored {
        let now = inv.index_by_address();
        opts.removed = stored
            .mailboxes
            .iter()
            .filter(|m| inv.find(&now, &m.address).is_none())
            .map(|m| m.address.to_ascii_lowercase())
            .collect();
    }
    let delegates = match &args.delegates {
        Some(path) => inventory::read_delegates(path, &mut inv, &opts)?,
        None => inventory::DelegateRows::default(),
    };
    if let Some(stored) = &stored
        && args.delegates.is_none()
        && !args.drop_delegates
    {
        keep_delegations(&mut inv, stored);
    }
    groups::assign(&mut inv, opts.service_account_threshold);
    let rejected = (rejected_mailboxes.len() + delegates.rejected.len()) as u64;
    let summary = ImportSummary::of(&inv, rejected);
    let mut guarded: Option<String> = None;
    if let Some(stored) = &stored {
        let diff = Diff::of(stored, &inv);
        diff.print(args.delegates.is_none() && !args.drop_delegates);
        if delegates.to_removed > 0 {
            outln!(
                "  {} delegate row(s) name removed mailboxes: left out with them, not rejected",
                delegates.to_removed
            );
        }
        let share = |n: usize, of: usize| {
            if of == 0 {
                0.0
            } else {
                n as f64 * 100.0 / of as f64
            }
        };
        let dropped = share(diff.removed.len(), stored.mailboxes.len());
        let dropped_edges = share(diff.delegations_dropped, stored.delegations.len());
        if !args.replace && (dropped > args.max_drop || dropped_edges > args.max_drop) {
            let why = format!(
                "{}: this import drops {:.1}% of the stored mailboxes and {:.1}% of the delegations \
                 (more than --max-drop {}%)",
                mailboxes.display(),
                dropped,
                dropped_edges,
                args.max_drop
            );
            if !args.dry_run {
                return Err(BadInput(format!(
                    "{why}; nothing was changed. Check the file, or add --replace"
                ))
                .into());
            }
            // A dry run shows what the real one would meet.
            guarded = Some(why);
        }
    }
    if let Some((path, merged)) = &sizes {
        print_sizes(path, merged);
    }
    // Said once, under the summary's "total size 0 B".
    let no_sizes = || {
        if sizes.is_none()
            && !inv.mailboxes.is_empty()
            && inv.mailboxes.iter().all(|m| m.size_bytes == 0)
        {
            outln!(
                "{} has no mailbox sizes, so plans will balance nothing. Add them from Graph's mailbox \
                 usage report: download it (Microsoft 365 admin center: Reports > Usage > Exchange > \
                 Mailbox usage > Export) and import again with --sizes <that file>",
                mailboxes.display()
            );
        }
    };
    let rejected_rows = || -> Vec<(&Path, &RowError)> {
        rejected_mailboxes
            .iter()
            .map(|e| (mailboxes.as_path(), e))
            .chain(
                delegates
                    .rejected
                    .iter()
                    .map(|e| (args.delegates.as_deref().unwrap_or(Path::new("")), e)),
            )
            .collect()
    };
    let rejected_path = args.rejected.clone().unwrap_or_else(|| {
        cli.state
            .parent()
            .unwrap_or(Path::new("."))
            .join("inventory-rejected.csv")
    });
    if args.dry_run {
        out!("{summary}");
        no_sizes();
        if rejected > 0 {
            // The rejected rows are a report, not state: a dry run writes them too, to be read.
            write_rejected(&rejected_path, &rejected_rows())?;
            outln!(
                "{rejected} rejected row(s) written to {}",
                rejected_path.display()
            );
        }
        if let Some(why) = &guarded {
            outln!("the import itself would be refused: {why}; check the file, or add --replace");
        }
        outln!("dry run: nothing was stored");
        return Ok(exit::OK);
    }

    let _lock = RunLock::acquire(&cli.state, "mailwave inventory import")?;
    let created = !cli.state.exists();
    let mut store = Store::create(&cli.state)?;
    let mut source = mailboxes.display().to_string();
    for extra in [args.delegates.as_ref(), sizes.as_ref().map(|s| s.0)]
        .into_iter()
        .flatten()
    {
        source = format!("{source} + {}", extra.display());
    }
    let report = store.replace_inventory(
        &inv,
        &source,
        rejected,
        &serde_json::to_string(&summary)?,
        cli.clock().now(),
    )?;

    out!("{summary}");
    no_sizes();
    if created {
        outln!(
            "created the state database {}",
            super::project::absolute(&cli.state).display()
        );
    }
    outln!(
        "stored in {}: {} new, {} updated, {} removed",
        super::project::absolute(&cli.state).display(),
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
        write_rejected(&rejected_path, &rejected_rows())?;
        outln!(
            "{rejected} rejected row(s) written to {}",
            rejected_path.display()
        );
    }
    Ok(exit::OK)
}

/// What `--sizes` merged, in one line (two when report rows matched nothing).
fn print_sizes(path: &Path, m: &inventory::sizes::Merged) {
    outln!(
        "sizes from {}: {} mailbox(es) matched by user principal name or address, {} not in the report (size unknown){}",
        path.display(),
        m.matched,
        m.without,
        if m.deleted > 0 {
            format!("; {} deleted mailbox row(s) skipped", m.deleted)
        } else {
            String::new()
        }
    );
    if m.unmatched > 0 {
        outln!(
            "  {} report row(s) matched no mailbox ({}{}); if user principal names differ from \
             addresses, add a User Principal Name column to the inventory",
            m.unmatched,
            m.unmatched_first.join(", "),
            if m.unmatched > m.unmatched_first.len() as u64 {
                ", ..."
            } else {
                ""
            }
        );
    }
}

/// The stored inventory with its delegations, if there is a state database with one.
fn stored_inventory(state: &Path) -> anyhow::Result<Option<inventory::Inventory>> {
    if !state.exists() {
        return Ok(None);
    }
    let store = Store::open_read_only(state)?;
    let (mut inv, ids) = store.load_inventory()?;
    if inv.mailboxes.is_empty() {
        return Ok(None);
    }
    inv.delegations = store.load_delegations(&ids)?;
    Ok(Some(inv))
}

/// Carries the stored delegations whose two mailboxes are both in `inv` over into it.
fn keep_delegations(inv: &mut inventory::Inventory, stored: &inventory::Inventory) {
    let index: std::collections::HashMap<String, u32> = inv
        .mailboxes
        .iter()
        .enumerate()
        .map(|(i, m)| (m.address.to_ascii_lowercase(), i as u32))
        .collect();
    let mut edges: std::collections::HashSet<(u32, u32)> =
        inv.delegations.iter().copied().collect();
    for &(a, b) in &stored.delegations {
        let at = |i: u32| {
            index
                .get(&stored.mailboxes[i as usize].address.to_ascii_lowercase())
                .copied()
        };
        if let (Some(x), Some(y)) = (at(a), at(b))
            && x != y
        {
            edges.insert((x.min(y), x.max(y)));
        }
    }
    inv.delegations = edges.into_iter().collect();
    inv.delegations.sort_unstable();
}

/// What an import changes against the stored inventory.
struct Diff {
    added: Vec<String>,
    removed: Vec<String>,
    resized: Vec<(String, u64, u64)>,
    delegations_added: usize,
    delegations_dropped: usize,
    stored_mailboxes: usize,
    stored_delegations: usize,
}

impl Diff {
    fn of(stored: &inventory::Inventory, new: &inventory::Inventory) -> Diff {
        let key = |a: &str| a.to_ascii_lowercase();
        let old: std::collections::HashMap<String, u64> = stored
            .mailboxes
            .iter()
            .map(|m| (key(&m.address), m.size_bytes))
            .collect();
        let now: std::collections::HashMap<String, u64> = new
            .mailboxes
            .iter()
            .map(|m| (key(&m.address), m.size_bytes))
            .collect();
        let mut added: Vec<String> = now
            .keys()
            .filter(|a| !old.contains_key(*a))
            .cloned()
            .collect();
        let mut removed: Vec<String> = old
            .keys()
            .filter(|a| !now.contains_key(*a))
            .cloned()
            .collect();
        let mut resized: Vec<(String, u64, u64)> = now
            .iter()
            .filter_map(|(a, &n)| old.get(a).filter(|&&o| o != n).map(|&o| (a.clone(), o, n)))
            .collect();
        added.sort();
        removed.sort();
        resized.sort();
        let edges = |inv: &inventory::Inventory| -> std::collections::HashSet<(String, String)> {
            inv.delegations
                .iter()
                .map(|&(a, b)| {
                    let (x, y) = (
                        key(&inv.mailboxes[a as usize].address),
                        key(&inv.mailboxes[b as usize].address),
                    );
                    if x < y { (x, y) } else { (y, x) }
                })
                .collect()
        };
        let (before, after) = (edges(stored), edges(new));
        Diff {
            delegations_added: after.difference(&before).count(),
            delegations_dropped: before.difference(&after).count(),
            added,
            removed,
            resized,
            stored_mailboxes: stored.mailboxes.len(),
            stored_delegations: stored.delegations.len(),
        }
    }

    fn print(&self, kept_delegations: bool) {
        outln!(
            "against the stored inventory ({} mailboxes, {} delegations):",
            self.stored_mailboxes,
            self.stored_delegations
        );
        outln!(
            "  new mailboxes       {}{}",
            self.added.len(),
            if self.added.is_empty() {
                String::new()
            } else {
                format!(" ({})", crate::format::few(&self.added, 3))
            }
        );
        outln!(
            "  removed mailboxes   {}{}",
            self.removed.len(),
            if self.removed.is_empty() {
                String::new()
            } else {
                format!(" ({})", crate::format::few(&self.removed, 3))
            }
        );
        let grew: u64 = self
            .resized
            .iter()
            .map(|(_, o, n)| n.saturating_sub(*o))
            .sum();
        let shrank: u64 = self
            .resized
            .iter()
            .map(|(_, o, n)| o.saturating_sub(*n))
            .sum();
        outln!(
            "  changed size        {} (+{}, -{})",
            self.resized.len(),
            crate::format::human_bytes(grew),
            crate::format::human_bytes(shrank)
        );
        outln!(
            "  delegations         +{} -{}{}",
            self.delegations_added,
            self.delegations_dropped,
            if kept_delegations {
                " (stored ones kept: no --delegates given)"
            } else {
                ""
            }
        );
    }
}

fn show(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    let (mut inv, ids) = store.load_inventory()?;
    inv.delegations = store.load_delegations(&ids)?;
    let last = store.last_import()?;
    let summary = ImportSummary::of(&inv, last.as_ref().map(|l| l.rejected).unwrap_or(0));
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"summary": summary, "last_import": last})
            )?
        );
        return Ok(exit::OK);
    }
    if inv.mailboxes.is_empty() {
        outln!(
            "no inventory stored in {} (see `mailwave inventory import`)",
            cli.state.display()
        );
        return Ok(exit::OK);
    }
    out!("{summary}");
    if let Some(l) = last {
        outln!(
            "last import {} from {} ({} rows rejected)",
            crate::format::local_text(&l.at, &super::plan_zone(cli, &store)),
            l.source,
            l.rejected
        );
    }
    Ok(exit::OK)
}
