//! `mailwave forecast`: will each coming wave be ready, and when does the estate finish?

use super::{BadInput, Cli, exit};
use crate::config::{Config, Window};
use crate::forecast::{self, WhatIf};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replay from this moment: "now", a date (midnight in the schedule's zone) or an RFC 3339
    /// time.
    #[arg(long, default_value = "now")]
    pub from: String,
    /// The forecast as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seed of the replay's random draws (failures, stalls).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What if: cut-overs a weekday window (re-packs the mailboxes still to move in plan order).
    #[arg(long, value_name = "N", help_heading = "What if")]
    pub capacity: Option<u64>,
    /// What if: cut-overs a weekend window.
    #[arg(long, value_name = "N", help_heading = "What if")]
    pub weekend_capacity: Option<u64>,
    /// What if: the cut-over window, "HH:MM-HH:MM" local time.
    #[arg(long, value_name = "HH:MM-HH:MM", help_heading = "What if")]
    pub window: Option<String>,
    /// What if: days of pre-stage before each window.
    #[arg(long, value_name = "DAYS", help_heading = "What if")]
    pub prestage_days: Option<u32>,
    /// What if: each move copies this many times as fast (0.5 = half the measured rate).
    #[arg(long, value_name = "FACTOR", help_heading = "What if")]
    pub throughput: Option<f64>,
    /// What if: moves copying at once (MaxConcurrentMigrations).
    #[arg(long, value_name = "N", help_heading = "What if")]
    pub concurrency: Option<u32>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let config = Config::load(&cli.config)?;
    let what_if = what_if(args)?;
    let now = cli.clock().now();
    let from = super::moment(&args.from, "--from", now, &config.schedule.timezone, false)?;
    let store = Store::open_read_only(&cli.state)?;
    let prepared = forecast::prepare(&store, &config, now, from, &crate::sim::Profile::default())?;
    drop(store);
    if prepared.waves.is_empty() {
        return Err(
            BadInput("no plan in the state database: run `mailwave plan` first".into()).into(),
        );
    }
    let f = forecast::forecast(&prepared, &config, &what_if, args.seed)?;
    // Kept for status, watch and the reports (the base case: a what-if is a question, not a plan).
    let store = Store::open(&cli.state)?;
    let kept = forecast::Forecast {
        what_if: None,
        ..f.clone()
    };
    store.save_forecast(now.as_millisecond(), &serde_json::to_string(&kept)?)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        out!("{}", forecast::text(&f, &config.schedule.timezone));
    }
    Ok(exit::OK)
}

fn what_if(args: &Args) -> anyhow::Result<WhatIf> {
    let window = match &args.window {
        Some(w) => Some(Window::parse(w).map_err(|m| BadInput(format!("--window: {m}")))?),
        None => None,
    };
    if let Some(t) = args.throughput
        && !(t > 0.0 && t <= 100.0)
    {
        return Err(BadInput(format!(
            "--throughput: {t} is not a factor above 0 and at most 100"
        ))
        .into());
    }
    for (name, v) in [
        ("--capacity", args.capacity),
        ("--weekend-capacity", args.weekend_capacity),
    ] {
        if v.is_some_and(|c| c > 10_000_000) {
            return Err(BadInput(format!("{name}: at most 10000000")).into());
        }
    }
    if args.concurrency == Some(0) || args.prestage_days.is_some_and(|d| d > 60) {
        return Err(BadInput(
            "--concurrency must be at least 1 and --prestage-days at most 60".into(),
        )
        .into());
    }
    Ok(WhatIf {
        capacity: args.capacity,
        weekend_capacity: args.weekend_capacity,
        window,
        prestage_days: args.prestage_days,
        throughput: args.throughput,
        concurrency: args.concurrency,
    })
}
