//! `mailwave demo`: the whole job with no setup. A synthetic estate is imported, planned and run
//! against the in-process simulator (throttling and failures on) on a sped-up clock.

use std::path::PathBuf;
use std::sync::Arc;

use super::{BadInput, Cli, exit};
use crate::config::Config;
use crate::engine::RunOptions;
use crate::exchange::ExchangeClient;
use crate::inventory::summary::ImportSummary;
use crate::inventory::{groups, synth};
use crate::plan::{self, Calendar, files};
use crate::sim::transport::LocalTransport;
use crate::sim::{Profile, Simulator};
use crate::store::Store;
use crate::store::lock::RunLock;
use crate::time::Clock;

const MARKER: &str = ".mailwave-demo";
/// The largest synthetic estate the demo makes (NHSmail's is 2.1 million).
const MAX_MAILBOXES: usize = 5_000_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many mailboxes the synthetic estate has.
    #[arg(long, default_value_t = 20_000)]
    pub mailboxes: usize,
    /// Simulated seconds per real second (default: whatever finishes in about a minute).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Where the demo's config, plan, database and report go (replaced on every demo run).
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Seed of the estate and the simulator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn demo_config(n: usize) -> String {
    let weekday = (n / 12).max(50);
    let weekend = (n / 5).max(100);
    format!(
        r#"# Written by `mailwave demo`; the simulator stands in for Exchange Online.
[tenant]
id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "MAILWAVE_CLIENT_SECRET"

[migration]
remote_host_name = "hybrid.contoso.com"
target_delivery_domain = "contoso.mail.onmicrosoft.com"

[schedule]
timezone = "Europe/London"
weekday_capacity = {weekday}
weekend_capacity = {weekend}
cutover_window = "20:00-06:00"
prestage_days = 2
bank_holidays = "schedules/uk-bank-holidays.json"

[run]
# The demo runs days in a minute, so the simulated service's request budget is squeezed with it:
# these are requests per *simulated* second (a real tenant takes a few a real second).
max_in_flight = {n}
requests_per_second = 0.25
burst = 20
max_parallel_calls = 16
resume_backoff = "10m"
dcs_approval = "investigate"

[notify]
# The html report after each window, to the leads (the simulator keeps every message).
report_to = ["migration-leads@contoso.com"]

[notices]
# Every user is told a week and a day before the move, and after it, from ten senders.
enabled = true
senders = ["notices01@contoso.com", "notices02@contoso.com", "notices03@contoso.com", "notices04@contoso.com", "notices05@contoso.com", "notices06@contoso.com", "notices07@contoso.com", "notices08@contoso.com", "notices09@contoso.com", "notices10@contoso.com"]
before = ["7d", "1d"]
after = true
templates = "schedules/notices"
quiet_hours = "21:00-07:00"
reply_to = "servicedesk@contoso.com"
help_link = "https://intranet.contoso.com/mailbox-move"
"#
    )
}

fn demo_profile() -> Profile {
    Profile {
        max_concurrent_migrations: 2_000,
        throughput_gb_per_hour: 20_000.0,
        max_concurrent_completions: 2_000,
        transient_failure_share: 0.02,
        permanent_failure_share: 0.003,
        dcs_investigate_share: 0.01,
        dcs_poor_share: 0.002,
        injected_5xx_share: 0.003,
        // A little under mailwave's own limit, so that the service throttles now and then.
        exchange_requests_per_second: 0.2,
        exchange_burst: 10,
        ..Profile::default()
    }
}

pub fn run(_cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    if !(1..=MAX_MAILBOXES).contains(&args.mailboxes) {
        return Err(BadInput(format!(
            "--mailboxes must be from 1 to {MAX_MAILBOXES}, got {}",
            args.mailboxes
        ))
        .into());
    }
    let speed = args
        .speed
        .map(crate::time::clock::check_speed)
        .transpose()
        .map_err(|e| BadInput(format!("--speed: {e}")))?;
    let dir = &args.dir;
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !is_demo && !empty {
            return Err(BadInput(format!(
                "{} exists and is not a mailwave demo folder; choose another --dir",
                dir.display()
            ))
            .into());
        }
        if is_demo {
            let _lock = RunLock::acquire(&dir.join(crate::config::DEFAULT_STATE), "mailwave demo")?;
            std::fs::remove_dir_all(dir)?;
        }
    }
    crate::private::create_dir(&dir.join("schedules"))?;
    crate::private::create_dir(&dir.join("state"))?;
    crate::private::write(
        &dir.join(MARKER),
        "a mailwave demo folder: `mailwave demo` replaces it\n",
    )?;
    crate::private::write(
        &dir.join("schedules/uk-bank-holidays.json"),
        include_str!("../../schedules/uk-bank-holidays.json"),
    )?;
    crate::private::create_dir(&dir.join("schedules/notices"))?;
    for (name, text) in crate::engine::notices::template::STARTERS {
        crate::private::write(&dir.join("schedules/notices").join(name), text)?;
    }
    let config_path = dir.join("mailwave.toml");
    crate::private::write(&config_path, demo_config(args.mailboxes))?;
    let config = Config::load(&config_path)?;
    // Beside its config, where `mailwave --config <dir>/mailwave.toml ...` finds it.
    let state = config.state_path.clone();
    let _lock = RunLock::acquire(&state, "mailwave demo")?;

    outln!("== a synthetic estate of {} mailboxes", args.mailboxes);
    let mut inv = synth::generate(&synth::EstateSpec::new(args.mailboxes, args.seed));
    groups::assign(&mut inv, 50);
    let summary = ImportSummary::of(&inv, 0);
    out!("{summary}");
    let mut store = Store::create(&state)?;
    store.replace_inventory(
        &inv,
        "mailwave demo (synthetic)",
        0,
        &serde_json::to_string(&summary)?,
        jiff::Timestamp::now(),
    )?;

    outln!("\n== the plan");
    let calendar = Calendar::from_schedule(&config.schedule)?;
    let start = jiff::Zoned::now()
        .with_time_zone(calendar.timezone.clone())
        .date()
        .tomorrow()?;
    let (inv, _) = store.load_inventory()?;
    let plan = plan::build(&inv, &calendar, start, "demo")?;
    let plan_dir = dir.join("schedules/demo");
    files::write(&plan, &plan_dir)?;
    store.load_plan(&files::read(&plan_dir)?, jiff::Timestamp::now())?;
    out!("{}", files::summary_table(&plan));
    drop(store);

    let first = plan
        .waves
        .first()
        .map(|w| w.prestage_start_utc)
        .unwrap_or_else(jiff::Timestamp::now);
    let last = plan.waves.last().map(|w| w.window_end_utc).unwrap_or(first);
    let origin = first - jiff::SignedDuration::from_hours(1);
    let span = last.duration_since(origin).as_secs_f64() + 6.0 * 3600.0;
    let speed = speed.unwrap_or((span / 45.0).clamp(1.0, crate::time::clock::MAX_SPEED));
    outln!(
        "\n== running against the built-in simulator, {speed:.0}x real time ({:.1} simulated days), throttling and failures on",
        span / 86_400.0
    );
    let clock = Clock::scaled(speed, origin);
    let sim = Arc::new(Simulator::new(demo_profile(), args.seed, clock).map_err(BadInput)?);
    sim.know_inventory(&inv);
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
    let runtime = tokio::runtime::Runtime::new()?;
    let started = std::time::Instant::now();
    let report = runtime.block_on(super::run::drive(
        service,
        &state,
        &config,
        clock,
        RunOptions::default(),
        "mailwave demo",
        super::run::Extras {
            metrics: None,
            mailer: Some(crate::engine::session::GraphServices {
                mailer: Arc::new(crate::directory::graph::GraphClient::new(
                    crate::sim::transport::LocalGraph::new(sim.clone()),
                )),
                licensing: None,
                report: Some(super::run::report_renderer()),
            }),
        },
    ));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let code = super::run::finish(report, started, &config.schedule.timezone)?;

    let store = Store::open_read_only(&state)?;
    let report = dir.join("report.md");
    let report_html = dir.join("report.html");
    crate::private::write(
        &report,
        crate::ui::report::markdown(&store, clock.now(), None, None)?,
    )?;
    crate::private::write(
        &report_html,
        crate::ui::report::html(&store, clock.now(), None, None)?,
    )?;
    let stats = sim.stats();
    outln!(
        "\nsimulator: {} New-MoveRequest accepted, {} answered 429, {} injected 503/504, {} duplicate creates refused",
        stats
            .by_cmdlet
            .get("New-MoveRequest")
            .map(|c| c.0)
            .unwrap_or(0),
        stats.throttled,
        stats.injected_faults,
        stats.duplicate_creates
    );
    let absolute = super::project::absolute;
    outln!("\nplan      {}", absolute(&plan_dir).display());
    outln!("database  {}", absolute(&state).display());
    outln!(
        "report    {} and {}",
        absolute(&report).display(),
        absolute(&report_html).display()
    );
    outln!(
        "look around: mailwave --config {} status",
        config_path.display()
    );
    // Mailboxes that need attention are part of the demo (failures are switched on).
    Ok(if code == exit::NEEDS_ATTENTION {
        exit::OK
    } else {
        code
    })
}
