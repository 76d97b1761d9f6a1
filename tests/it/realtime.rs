//! The binary as an operator runs it, in real time, against a separate process on loopback: killed
//! with SIGKILL and restarted, stopped while calls hang, and pointed at a service that is gone.
//! Every wait here is bounded; nothing sleeps in place of an event that can be awaited, except the
//! random moments at which a run is killed (time is the subject).
//!
//! Clocks run at real speed where time is the subject: the crash test shifts the calendar so that
//! the cut-over window opens a minute after the test starts (`MAILWAVE_CLOCK=scaled:1:...` for both
//! processes): the waiting, the kills and the grace are all real seconds. Where only the order of
//! events matters (a hostile network, replication lag), the clock runs faster, at 2x.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use mailwave::store::Store;
use rand::{RngExt, SeedableRng};

use crate::engine::{Cutover, assert_cutovers_inside_windows};
use crate::helpers::*;
use crate::live::*;
use crate::misbehave::{self, Reply, Server};

#[test]
fn killed_runs_resume_in_seconds_without_duplicates_losses_or_late_cutovers() {
    const N: usize = 600;
    // The window opens a minute after the start, on a calendar day of the plan.
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let window_end = window_start + SignedDuration::from_mins(2);
    let origin = window_start - SignedDuration::from_secs(60);
    let real_origin = Timestamp::now();
    let clock = format!("scaled:1:{real_origin}:{origin}");
    let sim_time = |real: Timestamp| origin + real.duration_since(real_origin);
    let schedule = "weekday_capacity = 5000\nweekend_capacity = 5000\ncutover_window = \"20:00-20:02\"\nprestage_days = 1";
    let run = "requests_per_second = 20\nburst = 20\nmax_parallel_calls = 16\ncutover_margin = \"30s\"\n\
               cutover_poll = \"5s\"\nprestage_poll = \"10s\"\nresume_backoff = \"5s\"\ndcs_approval = \"investigate\"\nstop_grace = \"5s\"";
    let p = Project::new(&config("http://127.0.0.1:9", schedule, run));
    let (mut sim, base) = sim_serve(&p, &clock, CRASH_PROFILE, &["--seed", "9"]);
    std::fs::write(p.path("mailwave.toml"), config(&base, schedule, run)).unwrap();
    plan_with_binary(&p, &clock, N, "2027-02-01");

    // Killed at random moments while it creates, restarted each time (one polite stop among them).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut restarts: Vec<Timestamp> = Vec::new();
    for round in 0..8 {
        restarts.push(sim_time(Timestamp::now()));
        let mut child = mailwave(&p, &clock, &["run"], &format!("run-{round}.log"))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(600..3_500)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round} ended by itself: {}",
            std::fs::read_to_string(p.path(&format!("run-{round}.log"))).unwrap()
        );
        if round == 4 {
            sigterm(&child);
            let (status, took) = wait_within(
                &mut child,
                Duration::from_secs(15),
                "SIGTERM",
                &p.path(&format!("run-{round}.log")),
            );
            let out = stdout_of(&mut child);
            assert_eq!(status.code(), Some(0), "a polite stop exits 0: {out}");
            assert!(out.contains("run stopped"), "{out}");
            assert!(took < Duration::from_secs(5 + 5), "stopped in {took:?}");
        } else {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    // The last run goes to the end.
    let mut last = mailwave(&p, &clock, &["run"], "run-last.log")
        .spawn()
        .unwrap();
    let (status, _) = wait_within(
        &mut last,
        Duration::from_secs(150),
        "the last run",
        &p.path("run-last.log"),
    );
    let out = stdout_of(&mut last);
    let log = std::fs::read_to_string(p.path("run-last.log")).unwrap();
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?}\n{out}\n{log}"
    );
    assert!(out.contains("run finished"), "{out}");

    let moves = moves(&base);
    sim.kill().unwrap();
    sim.wait().unwrap();

    // After each restart, the first new create went out within seconds (while there were any left
    // to make): an earlier run's creates in doubt held back no one but their own mailboxes.
    let mut created: Vec<Timestamp> = moves
        .iter()
        .map(|m| m["created"].as_str().unwrap().parse().unwrap())
        .collect();
    created.sort();
    for (round, &at) in restarts.iter().enumerate() {
        let before = created.iter().filter(|&&c| c < at).count();
        if before >= N {
            continue;
        }
        let first = created.iter().find(|&&c| c >= at).copied();
        let waited = first.map(|f| f.duration_since(at));
        assert!(
            waited.is_some_and(|w| w < SignedDuration::from_secs(5)),
            "round {round}: {before} of {N} existed at the restart; the first new create came after {waited:?}"
        );
    }

    // No duplicate create, no lost mailbox.
    assert_eq!(moves.len(), N, "one request per mailbox");
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
    assert_eq!(states.len(), N);
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
    assert!(
        store.completed_without_figures(0).unwrap().is_empty(),
        "the run that finished read the figures of every finished move"
    );

    // No cut-over outside the window.
    let windows: HashMap<Timestamp, Timestamp> = [(window_start, window_end)].into();
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
    assert!(checked >= N * 9 / 10, "{checked} cut over in the window");
}

/// A project planned with the library, whose first wave is pre-staging at the clock's start.
fn stalled_project(endpoint: &str, run: &str) -> (Project, String) {
    let schedule = "weekday_capacity = 100\nweekend_capacity = 100\nprestage_days = 2";
    let p = Project::new(&config(endpoint, schedule, run));
    let plan = planned_estate(&p, 60, jiff::civil::date(2027, 3, 1));
    let clock = clock_at(plan.waves[0].prestage_start_utc + SignedDuration::from_mins(1));
    (p, clock)
}

const STOP_RUN: &str = "max_parallel_calls = 8\nstop_grace = \"3s\"";
const GRACE: Duration = Duration::from_secs(3);
/// What the end of a run may add to the grace: the writer, the summary, the records.
const END: Duration = Duration::from_secs(5);

#[test]
fn a_stop_ends_within_the_grace_whatever_the_network_does() {
    // Every create hangs: the server reads it and never answers.
    let server = Server::start(misbehave::exchange(|req, _| {
        match req.cmdlet().as_deref() {
            Some("New-MoveRequest") => Reply::Stall,
            _ => Reply::Json(200, Some(serde_json::json!({"value": []}))),
        }
    }));
    let stalled = |s: &Server| s.stalled.load(std::sync::atomic::Ordering::SeqCst) > 0;

    // SIGTERM.
    let (p, clock) = stalled_project(&server.base, STOP_RUN);
    let mut child = mailwave(&p, &clock, &["run"], "term.log").spawn().unwrap();
    assert!(
        server.wait_for(Duration::from_secs(20), stalled),
        "no create reached the server"
    );
    sigterm(&child);
    let (status, took) = wait_within(
        &mut child,
        GRACE + END + END,
        "SIGTERM with hung calls",
        &p.path("term.log"),
    );
    let out = stdout_of(&mut child);
    assert!(took <= GRACE + END, "ended {took:?} after SIGTERM\n{out}");
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("run stopped"), "{out}");
    assert!(out.contains("calls cut off at the stop"), "{out}");
    // The calls cut off are like a crash for their mailboxes: in doubt, never a success.
    let store = Store::open_read_only(&p.db()).unwrap();
    let (open, submitted): (i64, i64) = store
        .conn()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL),
                    (SELECT COUNT(*) FROM mailbox_state WHERE state != 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(open > 0, "the creates cut off stay open for the next run");
    assert_eq!(submitted, 0, "nothing counted as created");
    drop(store);

    // --until a few seconds away.
    let (p, clock) = stalled_project(&server.base, STOP_RUN);
    let spec: mailwave::time::ClockSpec = clock.parse().unwrap();
    let until = mailwave::time::Clock::from_spec(spec).now() + SignedDuration::from_secs(4);
    let started = Instant::now();
    let mut child = mailwave(
        &p,
        &clock,
        &["run", "--until", &until.to_string()],
        "until.log",
    )
    .spawn()
    .unwrap();
    let (status, took) = wait_within(
        &mut child,
        Duration::from_secs(30),
        "--until with hung calls",
        &p.path("until.log"),
    );
    let out = stdout_of(&mut child);
    assert!(
        took <= Duration::from_secs(4) + GRACE + END,
        "ended {:?} after its start with --until 4 s away\n{out}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("run until"), "{out}");
}

#[test]
fn a_fatal_error_ends_within_the_grace_while_other_calls_hang() {
    // The first creates hang; then the service refuses the cmdlet (403, empty body: not in the role).
    let count = std::sync::atomic::AtomicUsize::new(0);
    let server = Server::start(misbehave::exchange(move |req, _| {
        match req.cmdlet().as_deref() {
            Some("New-MoveRequest") => {
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                    Reply::Stall
                } else {
                    Reply::Json(403, None)
                }
            }
            _ => Reply::Json(200, Some(serde_json::json!({"value": []}))),
        }
    }));
    let (p, clock) = stalled_project(&server.base, STOP_RUN);
    let mut child = mailwave(&p, &clock, &["run"], "fatal.log").spawn().unwrap();
    let (status, _) = wait_within(
        &mut child,
        Duration::from_secs(30),
        "a fatal error with hung calls",
        &p.path("fatal.log"),
    );
    let refused_at = server
        .requests()
        .iter()
        .filter(|r| r.cmdlet().as_deref() == Some("New-MoveRequest"))
        .count();
    let out = stdout_of(&mut child);
    let log = std::fs::read_to_string(p.path("fatal.log")).unwrap();
    assert!(refused_at > 3, "the refusal came");
    assert_eq!(status.code(), Some(1), "{out}\n{log}");
    assert!(out.contains("run fatal"), "{out}");
    assert!(
        log.contains("Exchange refused New-MoveRequest"),
        "the reason is plain: {log}"
    );
}

#[test]
fn a_dead_service_is_never_reported_as_success() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    // Whoever watches the webhook hears of it while it lasts, and of the end.
    let hook = Server::start(|_, _| Reply::Json(200, None));
    let run = "max_parallel_calls = 8\nstop_grace = \"3s\"\nunreachable_timeout = \"8s\"\n\
               [notify]\nwebhook_url_env = \"MW_RT_HOOK\"";
    let (once_p, once_clock) = stalled_project(&dead, run);
    let (long_p, long_clock) = stalled_project(&dead, run);
    let mut once = mailwave(&once_p, &once_clock, &["run", "--once"], "once.log")
        .spawn()
        .unwrap();
    let mut long = mailwave(&long_p, &long_clock, &["run"], "long.log")
        .env("MW_RT_HOOK", format!("{}/hook", hook.base))
        .spawn()
        .unwrap();
    for (child, p, log, what) in [
        (&mut once, &once_p, "once.log", "--once"),
        (&mut long, &long_p, "long.log", "a long run"),
    ] {
        let (status, took) = wait_within(child, Duration::from_secs(60), what, &p.path(log));
        let out = stdout_of(child);
        let log = std::fs::read_to_string(p.path(log)).unwrap();
        assert_eq!(
            status.code(),
            Some(5),
            "{what} exits 5 ({took:?}):\n{out}\n{log}"
        );
        assert!(out.contains("run unreachable"), "{what}: {out}");
        assert!(
            log.contains("could not reach the service")
                || log.contains("no good answer from the service"),
            "{what} says why: {log}"
        );
        assert!(
            log.contains("SERVICE NOT ANSWERING") || what == "--once",
            "{what}: its progress lines say so: {log}"
        );
        assert!(!out.contains("run finished"), "{what}: {out}");
    }
    let posted: Vec<serde_json::Value> = hook.requests().iter().map(|r| r.json()).collect();
    assert!(
        posted.iter().any(|b| b["text"]
            .as_str()
            .is_some_and(|t| t.contains("has not answered since"))),
        "an alert while it lasted: {posted:?}"
    );
    assert!(
        posted
            .iter()
            .any(|b| b["summary"]["outcome"] == "unreachable"),
        "the summary at the end: {posted:?}"
    );
}

/// The webhook's answer is told as it is: a plain refusal is a refusal, and only a redirect is
/// said to be one mailwave does not follow.
#[test]
fn the_webhooks_refusal_is_told_as_it_is() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let run = "stop_grace = \"3s\"\n[notify]\nwebhook_url_env = \"MW_RT_HOOK\"";
    for (reply, says, never) in [
        (
            Reply::Json(404, None),
            "the webhook refused the message",
            "redirect",
        ),
        (
            Reply::Raw(
                302,
                vec![("Location".into(), "http://127.0.0.1:9/elsewhere".into())],
                Vec::new(),
            ),
            "the webhook answered with a redirect, which mailwave does not follow",
            "the webhook refused the message",
        ),
    ] {
        let reply = std::sync::Mutex::new(Some(reply));
        let hook = Server::start(move |_, _| {
            reply
                .lock()
                .unwrap()
                .take()
                .unwrap_or(Reply::Json(500, None))
        });
        let (p, clock) = stalled_project(&dead, run);
        let mut child = mailwave(&p, &clock, &["run", "--once"], "once.log")
            .env("MW_RT_HOOK", format!("{}/hook", hook.base))
            .spawn()
            .unwrap();
        let (status, _) = wait_within(
            &mut child,
            Duration::from_secs(60),
            "run --once",
            &p.path("once.log"),
        );
        assert_eq!(status.code(), Some(5));
        let log = std::fs::read_to_string(p.path("once.log")).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("webhook"))
            .unwrap_or_else(|| panic!("no word of the webhook: {log}"));
        assert!(line.contains(says) && !line.contains(never), "{line}");
    }
}

/// README's rehearsal, step by step, as an operator types it: `init`, `sim serve` at a speed, the
/// clock and the endpoints it prints, an import from Graph, a plan and a run. Only the speed is
/// raised (README names both).
#[test]
fn the_readme_rehearsal_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let steps = [
        "mailwave init --dir rehearsal",
        "mailwave sim serve --hold-clock --speed 600 --start 2027-01-04T08:00:00Z --users 500",
        "export MAILWAVE_CLOCK=sim:",
        "export MAILWAVE_ENDPOINTS_BASE=",
        "export MAILWAVE_CLIENT_SECRET=rehearsal",
        "mailwave inventory import --from-graph",
        "mailwave plan --start 2027-01-04",
        "mailwave run",
        "--speed 6000",
    ];
    for step in steps {
        assert!(readme.contains(step), "README's rehearsal has `{step}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mailwave");
    let out = Command::new(bin)
        .args(["init", "--dir", "rehearsal"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let here = dir.path().join("rehearsal");
    let config = std::fs::read(here.join("mailwave.toml")).unwrap();
    let mut sim = Command::new(bin)
        .args([
            "sim",
            "serve",
            "--hold-clock",
            "--speed",
            "6000",
            "--start",
            "2027-01-04T08:00:00Z",
            "--users",
            "500",
        ])
        .current_dir(&here)
        .env_remove("MAILWAVE_CLOCK")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let (mut base, mut clock, mut endpoints) = (String::new(), String::new(), String::new());
    for line in lines.by_ref().take(6) {
        let line = line.unwrap();
        if let Some(b) = line.strip_prefix("mailwave simulator listening on ") {
            base = b.to_string();
        }
        if let Some(c) = line.trim().strip_prefix("export MAILWAVE_CLOCK=") {
            clock = c.to_string();
        }
        if let Some(e) = line.trim().strip_prefix("export MAILWAVE_ENDPOINTS_BASE=") {
            endpoints = e.to_string();
        }
    }
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(
        clock,
        format!("sim:{base}"),
        "sim serve says how to follow its clock"
    );
    assert_eq!(endpoints, base, "and how to point the endpoints at it");
    let sim_clock = || -> String {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            reqwest::get(format!("{base}/_sim/clock"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let step = |args: &[&str], limit: Duration| {
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(&here)
            .env("MAILWAVE_CLOCK", &clock)
            .env("MAILWAVE_ENDPOINTS_BASE", &endpoints)
            .env("MAILWAVE_CLIENT_SECRET", "rehearsal")
            .env("MAILWAVE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < limit, "{args:?} took over {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    let out = step(
        &["inventory", "import", "--from-graph"],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("new"), "{}", stdout(&out));
    let out = step(&["plan", "--start", "2027-01-04"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    // The setup cost no simulated time: the clock still stands at the start, and every
    // command read that time.
    assert_eq!(sim_clock(), "held:6000:2027-01-04T08:00:00Z");
    let out = step(&["status", "--json"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["generated_at"], "2027-01-04T08:00:00Z");
    let out = step(&["run"], Duration::from_secs(60));
    let text = stdout(&out);
    let after = sim_clock();
    sim.kill().unwrap();
    sim.wait().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(
        after.starts_with("scaled:6000:"),
        "the run started it: {after}"
    );
    assert!(
        text.contains("run finished (Mon 4 Jan 2027 ") && text.contains(" GMT to "),
        "the summary's times are the plan's: {text}"
    );
    assert!(text.contains("cut over this run"), "{text}");
    assert_eq!(
        std::fs::read(here.join("mailwave.toml")).unwrap(),
        config,
        "the rehearsal needs no edit of the file"
    );
    let store = Store::open_read_only(&here.join("state/mailwave.db")).unwrap();
    let done: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM mailbox_state WHERE state IN (5, 6)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(done > 450, "{done} of about 500 cut over\n{text}");
}

/// A run through a saboteur in front of `sim serve`: some calls hang, some connections drop, some
/// answers are HTML or an error in a 200, and some creates are done by the service with their
/// answer thrown away. The run goes on, and ends as if none of it had happened: one request per
/// mailbox, none lost, none cut over outside the window.
#[test]
fn a_run_through_a_hostile_network_loses_nothing_and_duplicates_nothing() {
    const N: usize = 200;
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window_start - SignedDuration::from_secs(60);
    // At 2x: the sabotage is the subject, not the minute before the window or the window itself;
    // the hangs and drops still meet the same call timeout and retries.
    let clock = format!("scaled:2:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 5000\nweekend_capacity = 5000\ncutover_window = \"20:00-20:02\"\nprestage_days = 1";
    let run = "requests_per_second = 20\nburst = 20\nmax_parallel_calls = 8\ncutover_margin = \"30s\"\n\
               cutover_poll = \"5s\"\nprestage_poll = \"10s\"\nresume_backoff = \"5s\"\nstop_grace = \"5s\"\n\
               call_timeout = \"2s\"";
    let p = Project::new(&config("http://127.0.0.1:9", schedule, run));
    let (mut sim, base) = sim_serve(
        &p,
        &clock,
        "max_concurrent_migrations = 1000\nthroughput_gb_per_hour = 1000000.0\nbase_move_minutes = 0.25\n\
         seconds_per_item = 0.0\nmax_concurrent_completions = 1000\nfinalization_minutes = 0.15\n\
         stall_share = 0.0\ntransient_failure_share = 0.0\npermanent_failure_share = 0.0\n\
         dcs_investigate_share = 0.0\ndcs_poor_share = 0.0\ninjected_5xx_share = 0.0\n\
         replication_lag_seconds = 2.0\nexchange_requests_per_second = 1000.0\nexchange_burst = 1000\n",
        &[],
    );
    let upstream = base.trim_start_matches("http://").to_string();
    let creates = std::sync::atomic::AtomicUsize::new(0);
    let proxy = Server::start(move |req, n| {
        let forward = Reply::Forward(upstream.clone());
        if req.cmdlet().is_none() {
            return forward; // tokens
        }
        if req.cmdlet().as_deref() == Some("New-MoveRequest")
            && creates.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 6 == 5
        {
            return Reply::ForwardThenDrop(upstream.clone());
        }
        match n % 41 {
            7 => Reply::Stall,
            13 => Reply::Drop,
            19 => Reply::Json(
                200,
                Some(
                    serde_json::json!({"error": {"code": "InternalError", "message": "Error executing cmdlet"}}),
                ),
            ),
            29 => Reply::Raw(500, vec![], b"<html>Service Unavailable</html>".to_vec()),
            37 => Reply::StallMidBody {
                length: 500,
                partial: b"{\"value\":[".to_vec(),
            },
            _ => forward,
        }
    });
    std::fs::write(p.path("mailwave.toml"), config(&proxy.base, schedule, run)).unwrap();
    plan_with_binary(&p, &clock, N, "2027-02-01");

    let mut child = mailwave(&p, &clock, &["run"], "run.log").spawn().unwrap();
    let (status, _) = wait_within(
        &mut child,
        Duration::from_secs(170),
        "a run through a hostile network",
        &p.path("run.log"),
    );
    let out = stdout_of(&mut child);
    let log = std::fs::read_to_string(p.path("run.log")).unwrap();
    let moves = moves(&base);
    sim.kill().unwrap();
    sim.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?}\n{out}\n{log}"
    );
    assert!(out.contains("run finished"), "{out}");
    let sabotaged = proxy.requests().len();
    assert!(
        sabotaged > N,
        "the calls went through the saboteur: {sabotaged}"
    );
    assert!(
        log.contains("create outcome unknown"),
        "answers were lost: {log}"
    );
    assert_eq!(moves.len(), N, "one request per mailbox");
    assert!(
        moves.iter().all(|m| m["creates"] == 1),
        "exactly one successful create each"
    );
    let store = Store::open_read_only(&p.db()).unwrap();
    let (done, open): (i64, i64) = store
        .conn()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM mailbox_state WHERE state IN (5, 6)),
                    (SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (done, open),
        (N as i64, 0),
        "every mailbox cut over, every intent settled\n{out}"
    );
    let windows: HashMap<Timestamp, Timestamp> =
        [(window_start, window_start + SignedDuration::from_mins(2))].into();
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
    assert_eq!(assert_cutovers_inside_windows(&windows, &cutovers), N);
}

/// Operator actions while a real run goes against `sim serve`, in real time: each command returns
/// once the run has applied it (told by the signal file), and the service ends up as asked.
#[test]
fn hold_skip_and_reschedule_reach_the_service_while_a_run_goes() {
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window_start - SignedDuration::from_secs(20);
    let clock = format!("scaled:1:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 30\nweekend_capacity = 30\ncutover_window = \"20:00-20:02\"\nprestage_days = 1";
    let run = "requests_per_second = 50\nburst = 50\nmax_parallel_calls = 16\ncutover_margin = \"30s\"\n\
               cutover_poll = \"3s\"\nprestage_poll = \"5s\"\nstop_grace = \"5s\"\naction_poll = \"1h\"";
    let (p, mut sim, base) = quiet_project(&clock, schedule, run, 40, "2027-02-01");
    let store = || Store::open_read_only(&p.db()).unwrap();
    let first = store().wave_addresses("mw-2027-02-01").unwrap();
    let second = store().wave_addresses("mw-2027-02-02").unwrap();
    assert_eq!((first.len(), second.len()), (30, 10));
    let act = |args: &[&str]| {
        let started = Instant::now();
        let out = mailwave(&p, &clock, args, "act.log").output().unwrap();
        let log = std::fs::read_to_string(p.path("act.log")).unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{log}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.lines()
                .filter(|l| !l.starts_with("notices:"))
                .all(|l| l.ends_with("applied")),
            "{args:?}: {text}"
        );
        started.elapsed()
    };

    // Before the run: a mailbox of tomorrow's wave is held (no request yet, so none is made).
    act(&["mailbox", "hold", &second[0]]);
    // --metrics on a port already taken is bad input, before anything starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let out = mailwave(&p, &clock, &["run", "--metrics", &taken_addr], "taken.log")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        std::fs::read_to_string(p.path("taken.log")).unwrap()
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut child = mailwave(&p, &clock, &["run", "--metrics", &metrics_addr], "run.log")
        .spawn()
        .unwrap();
    let live = |base: &str| -> HashMap<String, serde_json::Value> {
        moves(base)
            .into_iter()
            .filter(|m| !m["identity"].as_str().unwrap().starts_with("removed:"))
            .map(|m| (m["identity"].as_str().unwrap().to_string(), m))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while live(&base).len() < first.len() {
        assert!(
            Instant::now() < deadline,
            "the first wave's requests were not all made in 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The run's figures for Prometheus.
    let scrape = || -> String {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            reqwest::get(format!("http://{metrics_addr}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape();
        let has = |line: &str| text.lines().any(|l| l == line);
        if has("mailwave_wave_mailboxes{wave=\"mw-2027-02-01\",stage=\"prestaged\"} 30")
            && has("mailwave_mailboxes{state=\"held\"} 1")
        {
            assert!(
                text.lines().any(|l| l.starts_with(
                    "mailwave_api_calls_total{cmdlet=\"New-MoveRequest\",outcome=\"ok\"}"
                )),
                "{text}"
            );
            assert!(!text.contains("@contoso.com"), "no address in the metrics");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the wave pre-staged:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // During pre-staging: hold one, skip one, move one to tomorrow. Each returns once applied.
    for took in [
        act(&["mailbox", "hold", &first[0], "--reason", "VIP"]),
        act(&["mailbox", "skip", &first[1]]),
        act(&["mailbox", "reschedule", &first[2], "--to", "mw-2027-02-02"]),
    ] {
        assert!(
            took < Duration::from_secs(8),
            "applied by the run in {took:?}, not after action_poll"
        );
    }
    let now = live(&base);
    assert!(
        !now.contains_key(&first[1]),
        "the skipped mailbox's request was removed"
    );
    assert_eq!(now[&first[2]]["complete_after"], "2027-02-02T20:00:00Z");

    // The window opens; everything else in the wave completes, the held one does not.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = live(&base)
            .values()
            .filter(|m| m["status"] == "Completed")
            .count();
        if done == first.len() - 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} completed after the window opened"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let status = stop_politely(&mut child, &p.path("run.log"));
    assert_eq!(status.code(), Some(0));
    let end = live(&base);
    sim.kill().unwrap();
    sim.wait().unwrap();
    assert!(
        end[&first[0]]["completion_started"].is_null(),
        "held: {}",
        end[&first[0]]
    );
    assert!(end[&first[0]]["complete_after"].as_str().unwrap() > "2028");
    assert!(!end.contains_key(&first[1]));
    assert!(
        end[&first[2]]["completion_started"].is_null(),
        "rescheduled to tomorrow: {}",
        end[&first[2]]
    );
    assert!(
        !end.contains_key(&second[0]),
        "held before it had a request: none was made"
    );
    let f = store().mailbox_facts(&first[2]).unwrap().unwrap();
    assert_eq!(f.wave, "mw-2027-02-02");
    assert_eq!(
        store().mailbox_facts(&first[0]).unwrap().unwrap().state,
        mailwave::store::State::Held
    );
    assert_eq!(
        store().mailbox_facts(&first[1]).unwrap().unwrap().state,
        mailwave::store::State::Skipped
    );
}

/// An action asked while the service stalls and no run is going stays pending (the command ends in
/// bounded time and says so), survives a run killed with SIGKILL, and the next run applies it.
#[test]
fn a_pending_action_outlives_a_stalled_service_and_a_killed_run() {
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window_start - SignedDuration::from_hours(1);
    let clock = format!("scaled:1:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 30\nweekend_capacity = 30\ncutover_window = \"20:00-20:02\"\nprestage_days = 1";
    let run = "requests_per_second = 50\nburst = 50\nprestage_poll = \"5s\"\nstop_grace = \"2s\"\n\
               call_timeout = \"3s\"\naction_poll = \"1h\"";
    let (p, mut sim, base) = quiet_project(&clock, schedule, run, 10, "2027-02-01");
    let live = || -> HashMap<String, serde_json::Value> {
        moves(&base)
            .into_iter()
            .filter(|m| !m["identity"].as_str().unwrap().starts_with("removed:"))
            .map(|m| (m["identity"].as_str().unwrap().to_string(), m))
            .collect()
    };

    // A run pre-stages the wave and is killed.
    let mut child = mailwave(&p, &clock, &["run"], "run-1.log").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while live().len() < 10 {
        assert!(
            Instant::now() < deadline,
            "the requests were not made in 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let target = "user0003@contoso.com";

    // The service now stalls every cmdlet: the command gives up on the call in bounded time and
    // leaves the action pending.
    let stalled = Server::start(misbehave::exchange(|_, _| Reply::Stall));
    std::fs::write(
        p.path("mailwave.toml"),
        config(&stalled.base, schedule, run),
    )
    .unwrap();
    let started = Instant::now();
    let mut act = mailwave(
        &p,
        &clock,
        &[
            "mailbox", "skip", target, "--reason", "corrupt", "--wait", "5",
        ],
        "act.log",
    )
    .spawn()
    .unwrap();
    let (status, took) = wait_within(
        &mut act,
        Duration::from_secs(30),
        "skip against a stalled service",
        &p.path("act.log"),
    );
    let out = stdout_of(&mut act);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("pending"), "{out}");
    assert!(took < Duration::from_secs(40), "{took:?}");
    eprintln!(
        "skip against a stalled service ended in {:?}",
        started.elapsed()
    );
    let store = || Store::open_read_only(&p.db()).unwrap();
    let facts = store().mailbox_facts(target).unwrap().unwrap();
    let audit = store().actions_of(facts.id).unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].applied_at.is_none(), "still pending: {audit:?}");
    assert_ne!(facts.state, mailwave::store::State::Skipped);
    assert!(live().contains_key(target), "nothing was removed yet");

    // The service is back; the next run applies the pending action.
    std::fs::write(p.path("mailwave.toml"), config(&base, schedule, run)).unwrap();
    let mut child = mailwave(&p, &clock, &["run"], "run-2.log").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while live().contains_key(target) {
        assert!(
            Instant::now() < deadline,
            "the pending skip was not applied in 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = stop_politely(&mut child, &p.path("run-2.log"));
    assert_eq!(status.code(), Some(0));
    sim.kill().unwrap();
    sim.wait().unwrap();
    let facts = store().mailbox_facts(target).unwrap().unwrap();
    assert_eq!(facts.state, mailwave::store::State::Skipped);
    let audit = store().actions_of(facts.id).unwrap();
    assert_eq!(audit.len(), 1, "one action, applied once");
    assert_eq!(audit[0].outcome.as_deref(), Some("applied"));
}

/// Notices in real time through `sim serve`'s Graph, the run killed with SIGKILL again and again
/// while they go out: nobody gets a notice twice, and every user's notice is accounted for (sent,
/// dropped as too late, or uncertain because a kill cut its call off).
#[test]
fn killed_runs_never_send_a_notice_twice() {
    const N: usize = 90;
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window_start - SignedDuration::from_secs(20);
    let clock = format!("scaled:1:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 5000\nweekend_capacity = 5000\ncutover_window = \"20:00-20:01\"\nprestage_days = 1";
    let run = "requests_per_second = 20\nburst = 20\nmax_parallel_calls = 16\ncutover_margin = \"20s\"\n\
               cutover_poll = \"5s\"\nprestage_poll = \"10s\"\nresume_backoff = \"5s\"\ndcs_approval = \"investigate\"\nstop_grace = \"5s\"";
    let notices = "\n[notices]\nenabled = true\nsenders = [\"notices01@contoso.com\", \"notices02@contoso.com\", \"notices03@contoso.com\"]\n\
                   before = [\"1m\"]\nafter = true\ntemplates = \"schedules/notices\"\nper_minute = 600\n";
    let p = Project::new(&config("http://127.0.0.1:9", schedule, run));
    crate::notices::write_templates(&p);
    let (mut sim, base) = sim_serve(
        &p,
        &clock,
        &format!("{CRASH_PROFILE}\ntransient_failure_share = 0.0\nmail_per_minute = 600\nmail_latency_ms = 250\n")
            .replace("transient_failure_share = 0.03\n", ""),
        &["--seed", "5"],
    );
    std::fs::write(
        p.path("mailwave.toml"),
        config(&base, schedule, run) + notices,
    )
    .unwrap();
    plan_with_binary(&p, &clock, N, "2027-02-01");

    // Killed while the notices go: each send takes 250 ms, so a kill usually cuts one off after
    // the service took the message (3 senders: 90 take about 8 s; a run starts in about a
    // second).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for round in 0..3 {
        let mut child = mailwave(&p, &clock, &["run"], &format!("run-{round}.log"))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(700..2_500)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round} ended by itself: {}",
            std::fs::read_to_string(p.path(&format!("run-{round}.log"))).unwrap()
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut last = mailwave(&p, &clock, &["run"], "run-last.log")
        .spawn()
        .unwrap();
    let (status, _) = wait_within(
        &mut last,
        Duration::from_secs(150),
        "the last run",
        &p.path("run-last.log"),
    );
    let out = stdout_of(&mut last);
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?}\n{out}\n{}",
        std::fs::read_to_string(p.path("run-last.log")).unwrap()
    );
    assert!(out.contains("notices sent"), "{out}");

    let mail: Vec<serde_json::Value> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{base}/_sim/mail"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for m in &mail {
        *seen
            .entry((
                m["to"][0].as_str().unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");

    let conn = rusqlite::Connection::open(p.db()).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let sent = count("SELECT COUNT(*) FROM notices WHERE status = 'sent'");
    let uncertain = count("SELECT COUNT(*) FROM notices WHERE status = 'uncertain'");
    assert!(
        mail.len() as i64 >= sent && mail.len() as i64 <= sent + uncertain,
        "{} accepted by the service; {sent} sent and {uncertain} uncertain in the books",
        mail.len()
    );
    // Every user's "before" notice is accounted for, and every user who moved was told after.
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM mailbox_state s WHERE NOT EXISTS (SELECT 1 FROM notices n
             WHERE n.mailbox_id = s.mailbox_id AND n.kind = 'before:1m'
               AND n.status IN ('sent', 'uncertain', 'dropped'))"
        ),
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM mailbox_state s WHERE s.state IN (5, 6) AND NOT EXISTS (SELECT 1
             FROM notices n WHERE n.mailbox_id = s.mailbox_id AND n.kind = 'after'
               AND n.status IN ('sent', 'uncertain'))"
        ),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM notices WHERE status = 'sending'"),
        0
    );
    println!(
        "NOTICES {} accepted, {sent} sent, {uncertain} uncertain, {} dropped",
        mail.len(),
        count("SELECT COUNT(*) FROM notices WHERE status = 'dropped'")
    );
}

/// Graph hangs while the run sends notices and checks licences: SIGTERM still ends the run within
/// the grace, and nothing that may have gone counts as sent.
#[test]
fn a_stop_ends_within_the_grace_while_graph_hangs() {
    let server = Server::start(misbehave::exchange(|req, _| {
        if req.path.contains("/v1.0/") {
            Reply::Stall
        } else {
            Reply::Json(200, Some(serde_json::json!({"value": []})))
        }
    }));
    let graph_hangs = |s: &Server| {
        let r = s.requests();
        r.iter().any(|q| q.path.contains("/sendMail"))
            && r.iter().any(|q| q.path.contains("/$batch"))
    };
    let run = format!(
        "{STOP_RUN}\n[licences]\nsku = \"ENTERPRISEPACK\"\nassign = true\n\
         [notices]\nenabled = true\nsenders = [\"notices01@contoso.com\"]\ntemplates = \"schedules/notices\"\n"
    );
    let (p, clock) = stalled_project(&server.base, &run);
    crate::notices::write_templates(&p);
    let mut child = mailwave(&p, &clock, &["run"], "graph.log").spawn().unwrap();
    assert!(
        server.wait_for(Duration::from_secs(20), graph_hangs),
        "no notice and no licence look-up reached the server: {}",
        std::fs::read_to_string(p.path("graph.log")).unwrap_or_default()
    );
    sigterm(&child);
    let (status, took) = wait_within(
        &mut child,
        GRACE + END + END,
        "SIGTERM while Graph hangs",
        &p.path("graph.log"),
    );
    let out = stdout_of(&mut child);
    assert!(took <= GRACE + END, "ended {took:?} after SIGTERM\n{out}");
    assert_eq!(status.code(), Some(0), "{out}");
    let conn = rusqlite::Connection::open(p.db()).unwrap();
    let sent: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM notices WHERE status = 'sent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent, 0, "a notice whose call hung is never counted as sent");
}

/// `sim serve` with `profile` and a project pointed at it, planned with `n` mailboxes from `day`.
fn rehearsal(
    clock: &str,
    schedule: &str,
    run: &str,
    profile: &str,
    n: usize,
    day: &str,
) -> (Project, Sim) {
    let p = Project::new(&config("http://127.0.0.1:9", schedule, run));
    let sim = Sim::start(&p, Some(clock), profile, &[]);
    std::fs::write(p.path("mailwave.toml"), config(&sim.base, schedule, run)).unwrap();
    plan_with_binary(&p, clock, n, day);
    (p, sim)
}

/// The live requests on the simulated service, by address.
fn live(base: &str) -> HashMap<String, serde_json::Value> {
    moves(base)
        .into_iter()
        .filter(|m| !m["identity"].as_str().unwrap().starts_with("removed:"))
        .map(|m| (m["identity"].as_str().unwrap().to_string(), m))
        .collect()
}

/// Runs an action command to its end; its exit code, output and log.
fn act(p: &Project, clock: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = mailwave(p, clock, args, "act.log").output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(p.path("act.log")).unwrap_or_default(),
    )
}

/// Approve, retry and release after a window has closed, with no run going, as an operator types
/// them: each mailbox's cut-over goes to a later window (the command says which), nothing cuts
/// over late, and the next run cuts the approved one over in that window. Issue 19 saw an approve
/// four days after the window cut the mailbox over at once.
#[test]
fn actions_after_a_window_closed_cut_over_in_a_later_window() {
    // An hour of the schedule a second: the two windows are a day apart.
    let d1: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let d2 = d1 + SignedDuration::from_hours(24);
    let origin = d1 - SignedDuration::from_hours(3);
    let clock = format!("scaled:3600:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 10\nweekend_capacity = 10\ncutover_window = \"20:00-22:00\"\nprestage_days = 1";
    let run = "requests_per_second = 50\nburst = 50\nmax_parallel_calls = 16\ncutover_margin = \"20m\"\n\
               cutover_poll = \"5m\"\nprestage_poll = \"10m\"\ndcs_approval = \"never\"\nstop_grace = \"2s\"";
    // Every move is graded Investigate: none completes until someone approves it.
    let profile = quiet_profile("").replace(
        "dcs_investigate_share = 0.01",
        "dcs_investigate_share = 1.0",
    );
    let (p, sim) = rehearsal(&clock, schedule, run, &profile, 16, "2027-02-01");
    let store = || Store::open_read_only(&p.db()).unwrap();
    let first = store().wave_addresses("mw-2027-02-01").unwrap();
    assert_eq!(first.len(), 10);
    let (approved, retried, released) = (&first[0], &first[1], &first[2]);
    let (code, out, log) = act(&p, &clock, &["mailbox", "hold", released]);
    assert_eq!(code, Some(0), "{out}{log}");

    // The first window comes and goes: nothing completes, everything waits for approval.
    let mut child = mailwave(
        &p,
        &clock,
        &["run", "--until", "2027-02-01T22:30:00Z"],
        "run-1.log",
    )
    .spawn()
    .unwrap();
    let (status, _) = wait_within(
        &mut child,
        Duration::from_secs(60),
        "run --until",
        &p.path("run-1.log"),
    );
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{}",
        std::fs::read_to_string(p.path("run-1.log")).unwrap()
    );
    let f = store().mailbox_facts(approved).unwrap().unwrap();
    assert_eq!(
        (f.state, f.wave.as_str()),
        (mailwave::store::State::Failed, "mw-2027-02-01")
    );

    // After the window, no run going: each goes to the next window, and says so.
    for (args, who) in [
        (vec!["mailbox", "approve", approved.as_str()], approved),
        (vec!["mailbox", "retry", retried.as_str()], retried),
        (vec!["mailbox", "release", released.as_str()], released),
    ] {
        let (code, out, log) = act(&p, &clock, &args);
        assert_eq!(code, Some(0), "{args:?}: {out}{log}");
        assert!(
            out.contains("applied; it cuts over in mw-2027-02-02, as mw-2027-02-01's window is closing or closed"),
            "{args:?}: {out}"
        );
        assert_eq!(
            store().mailbox_facts(who).unwrap().unwrap().wave,
            "mw-2027-02-02"
        );
    }
    let now = live(&sim.base);
    for who in [approved, retried] {
        assert_eq!(
            now[who.as_str()]["batch"],
            "mw-2027-02-02",
            "{}",
            now[who.as_str()]
        );
        assert_eq!(now[who.as_str()]["complete_after"], d2.to_string().as_str());
        assert!(
            now[who.as_str()]["completion_started"].is_null(),
            "{}",
            now[who.as_str()]
        );
    }
    assert!(
        !now.contains_key(released.as_str()),
        "held before it had a request"
    );
    // A dry run says the same before anything is recorded.
    let (code, out, _) = act(&p, &clock, &["mailbox", "approve", &first[3], "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "it cuts over in mw-2027-02-02, as mw-2027-02-01's window is closing or closed"
        ),
        "{out}"
    );

    // The next run cuts the approved one over in the next window, and nothing anywhere late.
    let mut child = mailwave(
        &p,
        &clock,
        &["run", "--until", "2027-02-02T22:30:00Z"],
        "run-2.log",
    )
    .spawn()
    .unwrap();
    let (status, _) = wait_within(
        &mut child,
        Duration::from_secs(90),
        "run --until",
        &p.path("run-2.log"),
    );
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{}",
        std::fs::read_to_string(p.path("run-2.log")).unwrap()
    );
    let end = live(&sim.base);
    let started: Timestamp = end[approved.as_str()]["completion_started"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", end[approved.as_str()]))
        .parse()
        .unwrap();
    assert!(
        started >= d2 && started < d2 + SignedDuration::from_hours(2),
        "{started}"
    );
    let windows: HashMap<Timestamp, Timestamp> = [d1, d2]
        .into_iter()
        .map(|s| (s, s + SignedDuration::from_hours(2)))
        .collect();
    let cutovers: Vec<Cutover> = end
        .values()
        .map(|m| {
            let t = |k: &str| m[k].as_str().map(|s| s.parse().unwrap());
            (
                m["identity"].as_str().unwrap().to_string(),
                t("complete_after"),
                t("completion_started"),
            )
        })
        .collect();
    assert!(assert_cutovers_inside_windows(&windows, &cutovers) >= 1);
}

/// An action on a request made moments ago waits out the service's replication instead of being
/// refused (issue 19: one hold of fifteen refused as "not yet replicated", then a release of five
/// refused as a whole): with a run going, with none (the command applies it itself), and with a
/// --wait too short for it (pending, never refused; the next run applies it).
#[test]
fn an_action_on_a_fresh_request_waits_out_replication() {
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    // At 2x: the replication lag and the retries after it are simulated seconds, and waiting them
    // out is what is tested, not how long they take in real time.
    let clock = format!(
        "scaled:2:{}:{}",
        Timestamp::now(),
        window_start - SignedDuration::from_hours(2)
    );
    let schedule = "weekday_capacity = 30\nweekend_capacity = 30\ncutover_window = \"20:00-20:02\"\nprestage_days = 1";
    // Creates go slowly, so that some requests are seconds old when the operator acts; the run
    // looks for actions every two seconds whatever else it waits for.
    let run = "requests_per_second = 2\nburst = 1\nmax_parallel_calls = 4\nprestage_poll = \"5s\"\n\
               stop_grace = \"2s\"\naction_poll = \"2s\"";
    let profile = quiet_profile("")
        .replace(
            "dcs_investigate_share = 0.01",
            "dcs_investigate_share = 0.0",
        )
        .replace(
            "replication_lag_seconds = 2.0",
            "replication_lag_seconds = 8.0",
        );
    let (p, sim) = rehearsal(&clock, schedule, run, &profile, 15, "2027-02-01");
    let store = || Store::open_read_only(&p.db()).unwrap();
    let waits = |log: &str| log.contains("the move request is not readable yet (replication)");
    let far = |who: &str| live(&sim.base)[who]["complete_after"].as_str().unwrap() > "2028";

    // A run goes; the operator holds new requests the moment they appear.
    let mut child = mailwave(&p, &clock, &["run"], "run.log").spawn().unwrap();
    let fresh = |n: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut m: Vec<serde_json::Value> = moves(&sim.base);
            if m.len() >= n {
                m.sort_by_key(|x| x["created"].as_str().unwrap().to_string());
                return m[m.len() - n..]
                    .iter()
                    .map(|x| x["identity"].as_str().unwrap().to_string())
                    .collect();
            }
            assert!(Instant::now() < deadline, "no {n} requests in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Five, each seconds old, in one command (the service cannot read them yet).
    let five = fresh(5);
    let five: Vec<&str> = five.iter().map(String::as_str).collect();
    let mut args = vec!["mailbox", "hold"];
    args.extend(five.iter().copied());
    let (code, out, log) = act(&p, &clock, &args);
    assert_eq!(code, Some(0), "{out}{log}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with("applied")).count(),
        5,
        "{out}"
    );
    assert!(five.iter().all(|a| far(a)));
    // And released together, as the operator meant to.
    args[1] = "release";
    let (code, out, log) = act(&p, &clock, &args);
    assert_eq!(code, Some(0), "{out}{log}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with("applied")).count(),
        5,
        "{out}"
    );
    // Every request made before the run stops, so that the next ones below are the only fresh ones.
    poll_until(Duration::from_secs(30), "all 15 requests made", || {
        live(&sim.base).len() >= 15
    });
    let status = stop_politely(&mut child, &p.path("run.log"));
    assert_eq!(status.code(), Some(0));
    let run_log = std::fs::read_to_string(p.path("run.log")).unwrap();
    assert!(
        waits(&run_log),
        "the run met a request not replicated yet:\n{run_log}"
    );

    // No run going: a request made by `run --once`, held at once by a command that applies it
    // itself, waiting for replication within its --wait.
    let fresh_without_a_run = |who: &str| {
        for args in [
            vec!["mailbox", "skip", who],
            vec!["mailbox", "release", who],
        ] {
            let (code, out, log) = act(&p, &clock, &args);
            assert_eq!(code, Some(0), "{args:?}: {out}{log}");
        }
        let out = mailwave(&p, &clock, &["run", "--once"], "once.log")
            .output()
            .unwrap();
        assert!(
            live(&sim.base).contains_key(who),
            "{:?}: {}",
            out.status,
            std::fs::read_to_string(p.path("once.log")).unwrap()
        );
    };
    let who = five[0];
    fresh_without_a_run(who);
    let (code, out, log) = act(&p, &clock, &["mailbox", "hold", who]);
    assert_eq!(code, Some(0), "{out}{log}");
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("applied")),
        "{out}"
    );
    assert!(waits(&log), "{log}");
    assert!(far(who));

    // A --wait shorter than replication: pending, with the reason, not refused; the next run
    // applies it.
    let who = five[1];
    fresh_without_a_run(who);
    let (code, out, log) = act(&p, &clock, &["mailbox", "hold", who, "--wait", "1"]);
    assert_eq!(code, Some(0), "{out}{log}");
    assert!(
        out.contains("pending: its move request was made moments ago"),
        "{out}"
    );
    let id = store().mailbox_facts(who).unwrap().unwrap().id;
    assert!(
        store()
            .actions_of(id)
            .unwrap()
            .last()
            .unwrap()
            .applied_at
            .is_none()
    );
    // Runs apply it once the service can read the request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store()
        .actions_of(id)
        .unwrap()
        .last()
        .unwrap()
        .applied_at
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the pending hold was not applied in 30 s"
        );
        let out = mailwave(&p, &clock, &["run", "--once"], "once.log")
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{:?}", out.status);
    }
    let audit = store().actions_of(id).unwrap();
    assert_eq!(
        audit.last().unwrap().outcome.as_deref(),
        Some("applied"),
        "{audit:?}"
    );
    assert_eq!(
        store().mailbox_facts(who).unwrap().unwrap().state,
        mailwave::store::State::Held
    );
    assert!(far(who));
}
