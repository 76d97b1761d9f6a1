//! The real `mailwave run` against `mailwave sim serve` on loopback, killed with SIGKILL at random
//! moments and restarted each time (and once stopped with SIGTERM). Both processes follow one
//! accelerated clock. The estate must end as if nothing had happened: no duplicate create, no lost
//! mailbox, no cut-over outside its window.
//!
//! The kill moments are random real-time delays; nothing here waits for time to make something happen.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use mailwave::store::Store;
use rand::{RngExt, SeedableRng};

use crate::engine::{Cutover, assert_cutovers_inside_windows};
use crate::helpers::*;

const SPEED: f64 = 10_000.0;

fn config(endpoint: &str) -> String {
    format!(
        r#"[tenant]
id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "MW_CRASH_SECRET"
[endpoints]
authority = "{endpoint}"
exchange = "{endpoint}"
graph = "{endpoint}"
[migration]
remote_host_name = "hybrid.contoso.com"
target_delivery_domain = "contoso.mail.onmicrosoft.com"
[schedule]
weekday_capacity = 200
weekend_capacity = 200
cutover_window = "18:00-06:00"
prestage_days = 1
bank_holidays = "schedules/uk-bank-holidays.json"
[run]
requests_per_second = 50
burst = 100
max_parallel_calls = 16
cutover_margin = "3h"
resume_backoff = "10m"
dcs_approval = "investigate"
stop_grace = "20s"
"#
    )
}

const PROFILE: &str = r#"
max_concurrent_migrations = 300
throughput_gb_per_hour = 3000.0
max_concurrent_completions = 400
transient_failure_share = 0.03
permanent_failure_share = 0.0
dcs_investigate_share = 0.01
dcs_poor_share = 0.0
replication_lag_seconds = 30.0
injected_5xx_share = 0.01
exchange_requests_per_second = 1000.0
exchange_burst = 1000
"#;

fn start_run(p: &Project, clock: &str, round: usize) -> Child {
    let log = std::fs::File::create(p.path(&format!("run-{round}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args(["run", "--clock", clock])
        .current_dir(p.dir.path())
        .env("MW_CRASH_SECRET", "crash-test-secret")
        .env("MAILWAVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("the run did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_runs_resume_without_duplicates_losses_or_late_cutovers() {
    let p = Project::new(&config("http://127.0.0.1:9"));
    let plan = planned_estate(&p, 600, date(2027, 2, 1));
    let profile = p.path("sim-profile.toml");
    std::fs::write(&profile, PROFILE).unwrap();

    // One clock for both processes, starting an hour before the first pre-staging.
    let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
    let clock = format!("scaled:{SPEED}:{}:{origin}", Timestamp::now());
    let mut sim = Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "9",
            "--clock",
            &clock,
        ])
        .arg("--profile")
        .arg(&profile)
        .stdout(Stdio::piped())
        .env("MAILWAVE_LOG", "warn")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("mailwave simulator listening on ")
        .unwrap()
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    std::fs::write(p.path("mailwave.toml"), config(&base)).unwrap();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    for round in 0..9 {
        let mut child = start_run(&p, &clock, round);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2_500)));
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(p.path(&format!("run-{round}.log"))).unwrap();
            assert!(
                matches!(status.code(), Some(0) | Some(3)),
                "round {round} exited by itself: {status:?}\n{log}"
            );
            break; // it finished before we could kill it
        }
        if round == 4 {
            // A polite stop: finish in-flight calls, summarise, exit 0.
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
            let status = wait_with_deadline(&mut child, Duration::from_secs(60));
            assert_eq!(status.code(), Some(0), "SIGTERM exits 0: {out}");
            assert!(out.contains("run stopped"), "{out}");
        } else {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
    }
    assert!(kills >= 5, "killed {kills} times");

    // The last run goes to the end.
    let mut last = start_run(&p, &clock, 99);
    let status = wait_with_deadline(&mut last, Duration::from_secs(180));
    let mut out = String::new();
    std::io::Read::read_to_string(last.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?}\n{out}"
    );
    assert!(out.contains("run finished"), "{out}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moves: Vec<serde_json::Value> = runtime.block_on(async {
        reqwest::get(format!("{base}/_sim/moves"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    sim.kill().unwrap();
    sim.wait().unwrap();

    // No duplicate create, no lost mailbox.
    assert_eq!(
        moves.len() as u64,
        plan.mailboxes,
        "one request per mailbox"
    );
    assert!(
        moves.iter().all(|m| m["creates"] == 1),
        "exactly one successful create each"
    );
    let store = Store::open_read_only(&p.db()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let mut q = store
        .conn()
        .prepare("SELECT s.state, s.last_error FROM mailbox_state s")
        .unwrap();
    let states: Vec<(i64, Option<String>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(states.len() as u64, plan.mailboxes);
    for (state, error) in &states {
        assert!(
            matches!(state, 5 | 6) || (matches!(state, 7 | 8) && error.is_some()),
            "state {state} {error:?}"
        );
    }
    let open: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0, "every intent has its outcome");

    // No cut-over outside its window.
    let windows: HashMap<Timestamp, Timestamp> = plan
        .waves
        .iter()
        .map(|w| (w.window_start_utc, w.window_end_utc))
        .collect();
    let parse = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Timestamp>().ok());
    let cutovers: Vec<Cutover> = moves
        .iter()
        .map(|m| {
            (
                m["identity"].as_str().unwrap().to_string(),
                parse(&m["complete_after"]),
                parse(&m["completion_started"]),
            )
        })
        .collect();
    let checked = assert_cutovers_inside_windows(&windows, &cutovers);
    assert!(checked as u64 >= plan.mailboxes * 9 / 10, "{checked}");
}
