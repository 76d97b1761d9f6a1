//! The command line: one file per subcommand. Errors are typed inside the library; here they become
//! one readable message and a documented exit code.

#[macro_use]
mod out;

mod actions;
mod analyze;
mod demo;
mod forecast;
mod init;
mod inventory;
mod mailbox;
mod notices;
mod plan;
mod preflight;
mod project;
mod report;
pub mod run;
mod sim;
mod status;
mod watch;
mod wave;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes (README documents them).
pub mod exit {
    /// Finished, or stopped cleanly.
    pub(crate) const OK: i32 = 0;
    /// A fatal error (service unreachable, damaged state database, ...).
    pub(crate) const FAILURE: i32 = 1;
    /// Bad input: command line, configuration, CSV or plan file. Nothing was changed.
    pub const BAD_INPUT: i32 = 2;
    /// The run finished, but some mailboxes need the operator (failed permanently, held, ...).
    pub(crate) const NEEDS_ATTENTION: i32 = 3;
    /// Another mailwave holds the state database.
    pub(crate) const LOCKED: i32 = 4;
    /// The service gave no good answer for `run.unreachable_timeout` (with `--once`: none at all).
    pub(crate) const UNREACHABLE: i32 = 5;
    /// Exited at once on a second stop signal.
    pub(crate) const INTERRUPTED: i32 = 130;
}

#[derive(Parser, Debug)]
#[command(
    name = "mailwave",
    version,
    about = "Plan, run and track bulk mailbox migrations into Exchange Online",
    long_about = "mailwave plans mailbox moves into waves on a calendar, drives Exchange Online's move \
requests at the rate the service accepts, remembers every step in a SQLite state database, and reports \
where the estate stands.\n\nStart with `mailwave init`, then `mailwave inventory import`, `mailwave plan` \
and `mailwave run`. `mailwave demo` runs the whole job against the built-in simulator."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "mailwave.toml",
        env = "MAILWAVE_CONFIG"
    )]
    pub config: PathBuf,
    /// State database (default: state/mailwave.db beside the config file, or its [state] path;
    /// a path given here is relative to the working directory).
    #[arg(
        long = "state",
        global = true,
        env = "MAILWAVE_STATE",
        value_name = "PATH"
    )]
    pub state_option: Option<PathBuf>,
    /// The state database the command works on, found before it runs (see `project`).
    #[arg(skip)]
    pub state: PathBuf,
    /// Log line format on standard error (or --log-file).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Also write logs to this file (appended).
    #[arg(long, global = true)]
    pub(crate) log_file: Option<PathBuf>,
    /// Follow an accelerated clock instead of the wall clock, for rehearsals against `mailwave sim
    /// serve --speed`: the `scaled:...` value it prints, or `sim:<its address>` to ask it (as
    /// `--hold-clock` needs). Every command that reads the time (plan, run, status, watch,
    /// report) then agrees with the simulator.
    #[arg(
        long = "clock",
        global = true,
        env = "MAILWAVE_CLOCK",
        value_name = "SPEC"
    )]
    pub clock_option: Option<sim::ClockArg>,
    /// The clock the command follows, found before it runs (from a simulator for `sim:`).
    #[arg(skip)]
    pub clock: Option<crate::time::ClockSpec>,
    /// The simulator's clock stood still when the command asked it.
    #[arg(skip)]
    clock_held: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The clock every command reads: the wall clock, or the rehearsal's accelerated one.
    pub fn clock(&self) -> crate::time::Clock {
        match self.clock {
            // A simulator still holding its clock: the command reads the time it holds.
            Some(spec) if self.clock_held => {
                crate::time::Clock::frozen(spec.speed, spec.sim_origin)
            }
            Some(spec) => crate::time::Clock::from_spec(spec),
            None => crate::time::Clock::real(),
        }
    }

    /// The clock now, for a command that reads it again and again (`watch`): a simulator whose
    /// clock stood still when the command started is asked again until it runs.
    pub(crate) fn current_clock(&self) -> crate::time::Clock {
        match &self.clock_option {
            Some(sim::ClockArg::Sim(url)) if self.clock_held => match sim::follow(url, false) {
                Ok((spec, true)) => crate::time::Clock::frozen(spec.speed, spec.sim_origin),
                Ok((spec, false)) => crate::time::Clock::from_spec(spec),
                Err(_) => self.clock(),
            },
            _ => self.clock(),
        }
    }

    /// Resolves `--clock`: a `sim:` clock is asked of the simulator, and started by a command that
    /// is about to call the move service (its own time then starts with the simulator's).
    fn follow_clock(&mut self) -> anyhow::Result<()> {
        match &self.clock_option {
            None => {}
            Some(sim::ClockArg::Spec(spec)) => self.clock = Some(*spec),
            // `sim serve` keeps its own time.
            Some(sim::ClockArg::Sim(_)) if matches!(self.command, Command::Sim(_)) => {}
            Some(sim::ClockArg::Sim(url)) => {
                let starts = match &self.command {
                    Command::Run(_) | Command::Preflight(_) | Command::Wave(_) => true,
                    Command::Mailbox(m) => !matches!(m, mailbox::Command::Show { .. }),
                    _ => false,
                };
                let (spec, held) = sim::follow(url, starts)?;
                self.clock = Some(spec);
                self.clock_held = held;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole job on a synthetic estate against the built-in simulator (no setup needed).
    Demo(demo::Args),
    /// Write a commented mailwave.toml and create schedules/ and state/.
    Init(init::Args),
    /// Import and inspect the mailbox inventory.
    #[command(subcommand)]
    Inventory(inventory::Command),
    /// Batch the inventory into waves on the calendar, write them under schedules/, and load them.
    Plan(plan::Args),
    /// Work the due waves: create move requests, follow them, cut over inside the windows.
    Run(run::Args),
    /// Where the estate stands: counts per wave and state, failures, the next wave.
    Status(status::Args),
    /// A live dashboard of the estate, refreshed from the state database (q quits).
    Watch(watch::Args),
    /// A report to hand on (md, html with charts, or csv/json rows): every wave, the charts, and
    /// every mailbox that needs attention and why.
    Report(report::Args),
    /// How fast the moves went and what held them up (transfer rates, stalls by cause, queueing,
    /// efficiency, data consistency, cut-over lag, the slowest moves), by wave, source or size.
    Analyze(analyze::Args),
    /// Will each coming wave be ready? Replays the rest of the plan from where every mailbox
    /// stands, on the simulator calibrated from this estate's moves; what-if options side by side.
    Forecast(forecast::Args),
    /// One mailbox: facts, state and history; hold, release, retry, skip, reschedule, approve.
    #[command(subcommand)]
    Mailbox(mailbox::Command),
    /// Whole waves: hold, release, reschedule.
    #[command(subcommand)]
    Wave(wave::Command),
    /// Notices to users: what one user will get, and what has gone.
    #[command(subcommand)]
    Notices(notices::Command),
    /// Before a wave: tokens, permissions, endpoint, mail users, conflicting requests, licences,
    /// timing and capacity, each pass/warn/fail (exit 0, 3 or 1).
    Preflight(preflight::Args),
    /// The built-in simulator of Exchange Online, Graph and Entra ID.
    #[command(subcommand)]
    Sim(sim::Command),
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MAILWAVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let file = cli.log_file.as_ref().and_then(|p| {
        if let Some(dir) = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            let _ = crate::private::create_dir(dir);
        }
        crate::private::append(p)
            .map_err(|e| errln!("mailwave: cannot open log file {}: {e}", p.display()))
            .ok()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match (cli.log_format, file) {
        (LogFormat::Json, Some(f)) => builder
            .json()
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        (LogFormat::Json, None) => builder
            .json()
            .with_writer(crate::ui::progress::LogWriter)
            .try_init(),
        (LogFormat::Text, Some(f)) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        (LogFormat::Text, None) => builder
            .with_writer(crate::ui::progress::LogWriter)
            .try_init(),
    };
    let _ = result;
}

/// The exit code an error maps to.
pub(crate) fn exit_code(error: &anyhow::Error) -> i32 {
    use crate::store::StoreError;
    for cause in error.chain() {
        if cause.is::<crate::config::ConfigError>()
            || cause.is::<crate::inventory::InventoryError>()
            || cause.is::<crate::plan::CalendarError>()
            || cause.is::<crate::plan::files::PlanFileError>()
            || cause.is::<crate::plan::PlanError>()
            || cause.is::<BadInput>()
        {
            return exit::BAD_INPUT;
        }
        if let Some(crate::auth::AuthError::Credential(_)) =
            cause.downcast_ref::<crate::auth::AuthError>()
        {
            return exit::BAD_INPUT;
        }
        if let Some(
            crate::engine::session::SessionError::UnknownWave(_)
            | crate::engine::session::SessionError::Notices(_),
        ) = cause.downcast_ref::<crate::engine::session::SessionError>()
        {
            return exit::BAD_INPUT;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::PlanRow { .. }
                | StoreError::UnknownMailbox(_)
                | StoreError::UnsafeFolder(_) => exit::BAD_INPUT,
                StoreError::Locked(_) => exit::LOCKED,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

/// A usage problem the command line parser cannot see (a file that already exists, a bad date).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(pub String);

/// A moment an option names: "now", a date (midnight in `tz`), an RFC 3339 time, or with `ago`
/// a span back from now ("24h", "90m", "7d").
pub(crate) fn moment(
    text: &str,
    option: &str,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
    ago: bool,
) -> anyhow::Result<jiff::Timestamp> {
    if text == "now" {
        return Ok(now);
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return Ok(d
            .to_zoned(tz.clone())
            .map_err(|e| BadInput(format!("{option} {text}: {e}")))?
            .timestamp());
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if ago {
        let span = match text.strip_suffix('d').map(str::parse::<i64>) {
            Some(Ok(days)) if (0..=3660).contains(&days) => {
                Some(jiff::SignedDuration::from_hours(24 * days))
            }
            Some(_) => None,
            None => text.parse::<jiff::SignedDuration>().ok(),
        };
        if let Some(back) = span.filter(|d| !d.is_negative())
            && let Ok(t) = now.checked_sub(back)
        {
            return Ok(t);
        }
    }
    Err(BadInput(format!(
        "{option}: {text:?} is not \"now\", a date (2027-01-04), a time (2027-01-04T18:00:00Z){}",
        if ago {
            " or a span back from now (24h, 7d)"
        } else {
            ""
        }
    ))
    .into())
}

/// The zone people read times in: the loaded plan's, else the configuration's, else UTC.
pub(crate) fn plan_zone(cli: &Cli, store: &crate::store::Store) -> jiff::tz::TimeZone {
    if let Ok(Some(name)) = store.plan_timezone()
        && let Ok(tz) = jiff::tz::TimeZone::get(&name)
    {
        return tz;
    }
    if cli.config.is_file()
        && let Ok(c) = crate::config::Config::load(&cli.config)
    {
        return c.schedule.timezone;
    }
    jiff::tz::TimeZone::UTC
}

/// The wave the option `option` names, or bad input saying there is none.
pub(crate) fn wave_named(
    store: &crate::store::Store,
    name: &str,
    option: &str,
) -> anyhow::Result<crate::store::actions::WaveInfo> {
    store.wave_info(name)?.ok_or_else(|| {
        BadInput(format!(
            "{option}no wave {name} in the state database (see `mailwave status`)"
        ))
        .into()
    })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let mut cli = Cli::parse();
    init_logging(&cli);
    let ready = cli.follow_clock().and_then(|()| project::locate(&mut cli));
    match ready.and_then(|()| dispatch(&cli)) {
        Ok(code) => code,
        // A reader that went away (`| head`) ends the output, not the command in error: whatever
        // path the broken pipe took out, it is the same quiet end as `out!` gives.
        Err(e) if closed_pipe(&e) => exit::OK,
        Err(e) => {
            errln!("mailwave: {e:#}");
            exit_code(&e)
        }
    }
}

/// Whether an error is standard output's reader going away, however it was wrapped (an io error,
/// or the csv or json writer's error around one, itself perhaps inside an io error).
fn closed_pipe(e: &anyhow::Error) -> bool {
    fn broken(cause: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe
                || io.get_ref().is_some_and(|inner| broken(inner));
        }
        if let Some(c) = cause.downcast_ref::<csv::Error>() {
            return matches!(c.kind(), csv::ErrorKind::Io(io) if broken(io));
        }
        if let Some(j) = cause.downcast_ref::<serde_json::Error>() {
            return j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe);
        }
        false
    }
    e.chain().any(broken)
}

pub(crate) fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Demo(a) => demo::run(cli, a),
        Command::Init(a) => init::run(cli, a),
        Command::Inventory(c) => inventory::run(cli, c),
        Command::Plan(a) => plan::run(cli, a),
        Command::Run(a) => run::run(cli, a),
        Command::Status(a) => status::run(cli, a),
        Command::Watch(a) => watch::run(cli, a),
        Command::Report(a) => report::run(cli, a),
        Command::Analyze(a) => analyze::run(cli, a),
        Command::Forecast(a) => forecast::run(cli, a),
        Command::Mailbox(c) => mailbox::run(cli, c),
        Command::Wave(c) => wave::run(cli, c),
        Command::Notices(c) => notices::run(cli, c),
        Command::Preflight(a) => preflight::run(cli, a),
        Command::Sim(c) => sim::run(cli, c),
    }
}
