//! The real-time fixture: the binary as an operator runs it (`mailwave run`, action commands) in a
//! project folder, against `mailwave sim serve` in another process on loopback, both following one
//! clock given as `MAILWAVE_CLOCK` (`scaled:<speed>:<real>:<sim>`). Every test that starts these
//! processes uses this module; every wait in it is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::helpers::Project;

const SECRET: &str = "realtime-test-secret";

pub(crate) fn config(endpoint: &str, schedule: &str, run: &str) -> String {
    format!(
        r#"[tenant]
id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "MW_RT_SECRET"
[endpoints]
authority = "{endpoint}"
exchange = "{endpoint}"
graph = "{endpoint}"
[migration]
remote_host_name = "hybrid.contoso.com"
target_delivery_domain = "contoso.mail.onmicrosoft.com"
[schedule]
timezone = "Europe/London"
bank_holidays = "schedules/uk-bank-holidays.json"
{schedule}
[run]
{run}
"#
    )
}

/// `mailwave <args>` in the project, following `clock`, its log in `log`.
pub(crate) fn mailwave(p: &Project, clock: &str, args: &[&str], log: &str) -> Command {
    let mut c = binary(p, Some(clock), args);
    c.stderr(std::fs::File::create(p.path(log)).unwrap());
    c
}

/// `mailwave <args>` in the project with stdout piped, on `clock` (`None`: the real clock), with the
/// project's client secret and nothing of the environment's project; stderr as the caller sets it
/// (captured by `output()` unless set).
pub(crate) fn binary(p: &Project, clock: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailwave"));
    c.args(args)
        .current_dir(p.dir.path())
        .env("MW_RT_SECRET", SECRET)
        .env("MAILWAVE_LOG", "info")
        .env_remove("MAILWAVE_CONFIG")
        .env_remove("MAILWAVE_STATE")
        .env_remove("MAILWAVE_ENDPOINTS_BASE")
        .stdout(Stdio::piped());
    match clock {
        Some(spec) => c.env("MAILWAVE_CLOCK", spec),
        None => c.env_remove("MAILWAVE_CLOCK"),
    };
    c
}

/// A project whose endpoints are a `sim serve` child running `profile` on `clock`: the project,
/// the child, and the address it serves.
pub(crate) fn served_project(
    clock: &str,
    schedule: &str,
    run: &str,
    profile: &str,
) -> (Project, Child, String) {
    let p = Project::new(&config("http://127.0.0.1:9", schedule, run));
    let (sim, base) = sim_serve(&p, clock, profile, &[]);
    std::fs::write(p.path("mailwave.toml"), config(&base, schedule, run)).unwrap();
    (p, sim, base)
}

/// A clock at real speed whose simulated time is `at` now.
pub(crate) fn clock_at(at: Timestamp) -> String {
    format!("scaled:1:{}:{at}", Timestamp::now())
}

/// Waits for the process to end, at most `limit`; kills it and fails the test past that, with
/// its log.
pub(crate) fn wait_within(
    child: &mut Child,
    limit: Duration,
    what: &str,
    log: &std::path::Path,
) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what}: still running after {limit:?}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stdout_of(child: &mut Child) -> String {
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Stops a run as an operator does (SIGTERM) and waits for it, at most 15 s; its exit status.
pub(crate) fn stop_politely(child: &mut Child, log: &std::path::Path) -> std::process::ExitStatus {
    sigterm(child);
    wait_within(child, Duration::from_secs(15), "SIGTERM", log).0
}

/// Waits until `check` holds, looking every 100 ms, at most `limit`.
pub(crate) fn poll_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes an inventory of `n` mailboxes, imports it and plans it from `day` with the binary.
pub(crate) fn plan_with_binary(p: &Project, clock: &str, n: usize, day: &str) {
    let mut csv = String::from("EmailAddress,SizeBytes,ItemCount,SourceDatabase\n");
    for i in 0..n {
        csv.push_str(&format!(
            "user{i:04}@contoso.com,{},{},DB{}\n",
            100_000_000 + i * 1_000,
            1_000 + i,
            i % 5
        ));
    }
    std::fs::write(p.path("mailboxes.csv"), csv).unwrap();
    for args in [
        vec!["inventory", "import", "mailboxes.csv"],
        vec!["plan", "--start", day],
    ] {
        let out = mailwave(p, clock, &args, "setup.log").output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            std::fs::read_to_string(p.path("setup.log")).unwrap()
        );
    }
}

pub(crate) const CRASH_PROFILE: &str = r#"
max_concurrent_migrations = 1000
throughput_gb_per_hour = 1000000.0
base_move_minutes = 0.25
seconds_per_item = 0.0
max_concurrent_completions = 1000
finalization_minutes = 0.15
stall_share = 0.05
stall_minutes = 0.2
transient_failure_share = 0.03
permanent_failure_share = 0.0
dcs_investigate_share = 0.01
dcs_poor_share = 0.0
replication_lag_seconds = 2.0
injected_5xx_share = 0.01
exchange_requests_per_second = 1000.0
exchange_burst = 1000
"#;

/// `CRASH_PROFILE` with nothing failing on its own (no transient failure, injected 5xx or stall),
/// for tests whose subject is something else; `extra` lines are added.
pub(crate) fn quiet_profile(extra: &str) -> String {
    CRASH_PROFILE
        .replace(
            "transient_failure_share = 0.03",
            "transient_failure_share = 0.0",
        )
        .replace("injected_5xx_share = 0.01", "injected_5xx_share = 0.0")
        .replace("stall_share = 0.05", "stall_share = 0.0")
        + extra
}

/// Starts `sim serve` for the project with `profile` (written to `sim-profile.toml`), following
/// `clock`; returns the child and its base URL.
pub(crate) fn sim_serve(p: &Project, clock: &str, profile: &str, args: &[&str]) -> (Child, String) {
    let mut sim = Sim::start(p, Some(clock), profile, args);
    let base = std::mem::take(&mut sim.base);
    let child = sim.child.take().unwrap();
    (child, base)
}

/// A `sim serve` child, killed when dropped (a failing test leaves none behind).
pub(crate) struct Sim {
    child: Option<Child>,
    pub(crate) base: String,
}

impl Sim {
    /// `sim serve` for the project with `profile` (written to `sim-profile.toml`) and `args`,
    /// following `clock` (`None`: the real clock), its log in `sim.log`.
    pub(crate) fn start(p: &Project, clock: Option<&str>, profile: &str, args: &[&str]) -> Sim {
        std::fs::write(p.path("sim-profile.toml"), profile).unwrap();
        let mut all = vec!["sim", "serve", "--profile", "sim-profile.toml"];
        all.extend_from_slice(args);
        let mut child = binary(p, clock, &all)
            .stderr(std::fs::File::create(p.path("sim.log")).unwrap())
            .spawn()
            .unwrap();
        let base = sim_base(&mut child);
        Sim {
            child: Some(child),
            base,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The base URL a `mailwave sim serve` child prints on its first line (its stdout must be piped).
pub(crate) fn sim_base(sim: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("sim serve's stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim_end()
        .strip_prefix("mailwave simulator listening on ")
        .unwrap_or_else(|| panic!("sim serve said {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    base
}

/// A project against a `sim serve` without failures or stalls on `clock`, planned with `n`
/// mailboxes from `day` by the binary: the project, the simulator's process and its address.
pub(crate) fn quiet_project(
    clock: &str,
    schedule: &str,
    run: &str,
    n: usize,
    day: &str,
) -> (Project, Child, String) {
    let (p, sim, base) = served_project(clock, schedule, run, &quiet_profile(""));
    plan_with_binary(&p, clock, n, day);
    (p, sim, base)
}

pub(crate) fn moves(base: &str) -> Vec<serde_json::Value> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        reqwest::get(format!("{base}/_sim/moves"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}
