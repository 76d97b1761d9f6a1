//! `mailwave plan`: inventory + calendar -> waves, written under schedules/<name>/ and loaded into the
//! state database.

use std::path::PathBuf;

use jiff::civil::Date;

use super::{BadInput, Cli, exit};
use crate::config::Config;
use crate::plan::{self, Calendar, files};
use crate::store::Store;
use crate::store::lock::RunLock;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Plan name: the folder under schedules/ (default: plan-<start date>).
    #[arg(long)]
    pub name: Option<String>,
    /// First day that may have a cut-over, YYYY-MM-DD (default: tomorrow, in the plan's time zone).
    #[arg(long)]
    pub start: Option<String>,
    /// Where plans are written (default: schedules/ next to the configuration file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the plan files only; do not load them into the state database.
    #[arg(long)]
    pub(crate) no_load: bool,
    /// Load an existing plan folder (for example after editing its batch CSVs) instead of planning.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["name", "start", "no_load", "dry_run"])]
    pub load: Option<PathBuf>,
    /// Print the waves without writing or loading anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse (exit 2, nothing written) when the plan has warnings: a start in the past, or a
    /// wave whose pre-staging should already have begun.
    #[arg(long)]
    pub strict: bool,
    /// Plan even though the first window has already opened (its mailboxes would get no
    /// pre-staging and may be cut over at once); refused without it.
    #[arg(long)]
    pub allow_past: bool,
}

/// What is wrong with a plan's timing at `now`: a start in the past, waves whose pre-staging
/// start has passed (their mailboxes get less copying time than `prestage_days`).
fn timing_warnings(
    plan: &plan::Plan,
    start: Date,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Vec<String> {
    let today = now.to_zoned(tz.clone()).date();
    let mut out = Vec::new();
    if start < today {
        out.push(format!(
            "--start {start} is in the past (today is {today} in {})",
            tz.iana_name().unwrap_or("the plan's zone")
        ));
    }
    let late: Vec<&plan::Wave> = plan
        .waves
        .iter()
        .filter(|w| w.prestage_start_utc < now)
        .collect();
    if let Some(first) = late.first() {
        let open = late.iter().filter(|w| w.window_start_utc <= now).count();
        out.push(format!(
            "{} wave(s) should already be pre-staging (first: {}, from {}){}: they get less copying time than prestage_days",
            late.len(),
            first.id,
            crate::format::local(first.prestage_start_utc, tz),
            if open > 0 { format!("; {open} of them have a window that has already opened") } else { String::new() }
        ));
    }
    out
}

/// With notices enabled: whether the pool of senders can carry the plan's busiest day.
fn notice_warning(plan: &plan::Plan, config: &Config) -> Option<String> {
    let n = &config.notices;
    if !n.enabled {
        return None;
    }
    let waves: Vec<(jiff::Timestamp, u64)> = plan
        .waves
        .iter()
        .map(|w| (w.window_start_utc, w.mailboxes))
        .collect();
    let (day, load, needed) =
        crate::engine::notices::busiest_day(&waves, n, &config.schedule.timezone)?;
    (needed > n.senders.len() as u64).then(|| {
        format!(
            "the notices need {needed} sending mailboxes on {day} ({load} notices; each sender {} a minute, {} a day{}), but [notices] has {}: add senders or the notices will be late or dropped",
            n.per_minute,
            n.per_day,
            if n.quiet_hours.is_some() { ", outside the quiet hours" } else { "" },
            n.senders.len()
        )
    })
}

/// `--start`: a day, and only a day. A time would be dropped (windows open at
/// `schedule.cutover_window`), so one is refused rather than ignored.
fn parse_start(text: &str) -> Result<Date, BadInput> {
    let date = text
        .parse::<Date>()
        .ok()
        .filter(|_| text.len() == 10 && text.as_bytes().get(4) == Some(&b'-'));
    date.ok_or_else(|| {
        let hint = if text.parse::<jiff::civil::DateTime>().is_ok() || text.contains('T') {
            ": a plan starts on a day; its windows open at [schedule] cutover_window"
        } else {
            ""
        };
        BadInput(format!(
            "--start: {text:?} is not a date (YYYY-MM-DD){hint}"
        ))
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    if let Some(dir) = &args.load {
        let _lock = RunLock::acquire(&cli.state, "mailwave plan --load")?;
        let mut store = Store::open(&cli.state)?;
        let report = store.load_plan(&files::read(dir)?, cli.clock().now())?;
        print_load(&report);
        return Ok(exit::OK);
    }
    let config = Config::load(&cli.config)?;
    let calendar = Calendar::from_schedule(&config.schedule)?;
    let start: Date = match &args.start {
        Some(s) => parse_start(s)?,
        None => cli
            .clock()
            .now()
            .to_zoned(calendar.timezone.clone())
            .date()
            .tomorrow()?,
    };
    let name = args.name.clone().unwrap_or_else(|| format!("plan-{start}"));
    if !valid_name(&name) {
        return Err(BadInput(format!(
            "--name: {name:?} must be 1-64 letters, digits, '-', '_' or '.' (it becomes a folder name)"
        ))
        .into());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        cli.config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("schedules")
    });
    let dir = out.join(&name);

    let _lock = (!args.no_load && !args.dry_run)
        .then(|| RunLock::acquire(&cli.state, "mailwave plan"))
        .transpose()?;
    // Holding the run lock, it may bring an older database's schema up to date itself.
    let store = match &_lock {
        Some(_) => Store::open(&cli.state)?,
        None => Store::open_read_only(&cli.state)?,
    };
    let (inv, _) = store.load_inventory()?;
    drop(store);
    let plan = plan::build(&inv, &calendar, start, &name)?;
    let now = cli.clock().now();
    if let Some(first) = plan.waves.first().filter(|w| w.window_start_utc <= now)
        && !args.allow_past
    {
        let tz = &calendar.timezone;
        return Err(BadInput(format!(
            "the plan's first window ({}, {}) has already opened (it is {}): its mailboxes would \
             get no pre-staging and could be cut over at once; nothing was written or loaded. \
             Start later (--start YYYY-MM-DD; the default is tomorrow), or add --allow-past to \
             plan into the past knowingly",
            first.id,
            crate::format::local(first.window_start_utc, tz),
            crate::format::local(now, tz)
        ))
        .into());
    }
    let mut warnings = timing_warnings(&plan, start, now, &calendar.timezone);
    warnings.extend(notice_warning(&plan, &config));
    for w in &warnings {
        errln!("mailwave: warning: {w}");
    }
    if args.strict && !warnings.is_empty() {
        return Err(BadInput(format!(
            "--strict: the plan has {} warning(s); nothing was written",
            warnings.len()
        ))
        .into());
    }
    if args.dry_run {
        out!("{}", files::summary_table(&plan));
        outln!("dry run: nothing was written or loaded");
        return Ok(exit::OK);
    }
    files::write(&plan, &dir)?;
    out!("{}", files::summary_table(&plan));
    outln!(
        "plan written to {}",
        super::project::absolute(&dir).display()
    );
    if !args.no_load {
        let mut store = Store::open(&cli.state)?;
        let report = store.load_plan(&files::read(&dir)?, cli.clock().now())?;
        print_load(&report);
    }
    Ok(exit::OK)
}

fn print_load(report: &crate::store::LoadReport) {
    if report.unchanged {
        outln!("the state database already holds this plan: nothing changed");
        return;
    }
    outln!(
        "loaded into the state database: {} waves, {} mailboxes added, {} moved to another wave, {} dropped",
        report.waves,
        report.added,
        report.moved,
        report.dropped
    );
    if !report.in_flight.is_empty() {
        outln!(
            "{} mailbox(es) are already in flight and stay in their wave:",
            report.in_flight.len()
        );
        for (address, state, wave) in report.in_flight.iter().take(20) {
            outln!("  {address} ({state}) stays in {wave}");
        }
        if report.in_flight.len() > 20 {
            outln!("  ... and {} more", report.in_flight.len() - 20);
        }
    }
}
