//! The second security review's findings (issue 20), each reproduced the way it was found: the
//! release binary, as an operator runs it, against `sim serve` in real time where the finding
//! needed a live run. A flood of connections on the metrics port, a FIFO or a link where the
//! actions signal goes, a configuration others can change, a key others can read, a state folder
//! others can write, and operator input that used to end in a panic.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use crate::helpers::*;
use crate::live::{binary, mailwave, moves, quiet_project, sigterm, stdout_of, wait_within};

/// A run that pre-stages its wave and then waits for the window, ten minutes away.
const RUN: &str = "requests_per_second = 50\nburst = 50\nmax_parallel_calls = 8\n\
                   prestage_poll = \"5s\"\nstop_grace = \"3s\"\naction_poll = \"2s\"";

/// A project planned with `n` mailboxes whose wave pre-stages now, against a quiet `sim serve`
/// that follows the same real-time clock.
struct Live {
    p: Project,
    sim: Child,
    base: String,
    clock: String,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
    }
}

fn live(n: usize, run: &str) -> Live {
    let window: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let clock = format!(
        "scaled:1:{}:{}",
        Timestamp::now(),
        window - SignedDuration::from_mins(10)
    );
    let schedule = "weekday_capacity = 100\nweekend_capacity = 100\n\
                    cutover_window = \"20:00-20:30\"\nprestage_days = 1";
    let (p, sim, base) = quiet_project(&clock, schedule, run, n, "2027-02-01");
    Live {
        p,
        sim,
        base,
        clock,
    }
}

/// Waits (bounded) until the service holds `n` move requests.
fn wait_for_requests(base: &str, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let made = moves(base).len();
        if made >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{made} of {n} requests after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /metrics` over a plain socket: the status line and the body, or why there was none.
fn scrape(addr: &str) -> Result<(String, String), String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mailwave\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no head")?;
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Descriptors a process holds now.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Finding 1: with 256 descriptors, 300 connections held on the metrics port (half of them
/// with partial headers) exhausted them, and the run ended on "unable to open database file"
/// 6 s after its start. Now the listener holds at most its share, each connection only for a
/// few seconds, and the run goes on.
#[test]
fn a_flood_on_the_metrics_port_never_starves_the_run() {
    // Slow creates, so the run is writing its database all through the flood.
    let live = live(
        30,
        &RUN.replace(
            "requests_per_second = 50\nburst = 50",
            "requests_per_second = 1.5\nburst = 1",
        ),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    // `ulimit -n 256` as the finding had it: the soft and the hard limit both.
    let plain = mailwave(
        &live.p,
        &live.clock,
        &["run", "--metrics", &addr],
        "run.log",
    );
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$@\"")
        .arg("sh")
        .arg(plain.get_program())
        .args(plain.get_args())
        .current_dir(live.p.dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(live.p.path("run.log")).unwrap());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => limited.env(k, v),
            None => limited.env_remove(k),
        };
    }
    let mut run = limited.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while scrape(&addr).is_err() {
        assert!(Instant::now() < deadline, "/metrics never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = moves(&live.base).len();
    assert!(
        before < 30,
        "the run is still creating when the flood starts"
    );

    // 300 connections held for 30 s: half say nothing, half stop inside their headers.
    let held = Duration::from_secs(30);
    let until = Instant::now() + held;
    let connected = Arc::new(AtomicUsize::new(0));
    let holders: Vec<_> = (0..300)
        .map(|i| {
            let (addr, connected) = (addr.clone(), connected.clone());
            std::thread::spawn(move || {
                let Ok(mut s) =
                    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10))
                else {
                    return;
                };
                connected.fetch_add(1, Ordering::Relaxed);
                if i % 2 == 0 {
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                }
                // Time is the subject: the connections are held, whatever the server does.
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                drop(s);
            })
        })
        .collect();
    let mut most = 0;
    while Instant::now() < until {
        most = most.max(open_descriptors(run.id()));
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended during the flood:\n{}",
            std::fs::read_to_string(live.p.path("run.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for h in holders {
        h.join().unwrap();
    }
    let during = moves(&live.base).len();
    println!(
        "flood: {} of 300 connected; the run held at most {most} descriptors; {} requests made during it",
        connected.load(Ordering::Relaxed),
        during - before
    );
    assert!(
        connected.load(Ordering::Relaxed) >= 150,
        "the flood did not happen"
    );
    assert!(
        most < 128,
        "the run held {most} descriptors of its 256 during the flood"
    );
    assert!(during > before, "the run made no request during the flood");

    // Once they are gone, /metrics answers, and the run finishes its pre-staging.
    wait_for_requests(&live.base, 30, Duration::from_secs(40));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((status, body)) = scrape(&addr)
            && body
                .contains("mailwave_wave_mailboxes{wave=\"mw-2027-02-01\",stage=\"prestaged\"} 30")
        {
            assert!(status.contains(" 200 "), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics did not show the wave pre-staged after the flood: {:?}",
            scrape(&addr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    sigterm(&run);
    let (status, _) = wait_within(
        &mut run,
        Duration::from_secs(20),
        "SIGTERM after the flood",
        &live.p.path("run.log"),
    );
    let out = stdout_of(&mut run);
    let log = std::fs::read_to_string(live.p.path("run.log")).unwrap();
    assert_eq!(status.code(), Some(0), "{out}{log}");
    assert!(out.contains("run stopped"), "{out}");
    for bad in [
        "Too many open files",
        "FATAL",
        "unable to open database file",
    ] {
        assert!(!log.contains(bad), "{bad}:\n{log}");
    }
}

/// `--metrics` beyond loopback is refused without `--metrics-public`, and logged as a warning
/// with it.
#[test]
fn metrics_beyond_loopback_need_metrics_public() {
    let p = Project::new(SMALL_CONFIG);
    planned_estate(&p, 5, jiff::civil::date(2027, 3, 1));
    let out = p.run(&["run", "--once", "--metrics", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--metrics-public"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["run", "--metrics-public"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Finding 8: a FIFO at `<db>.actions` froze the run, and SIGTERM ended it only through the
/// watchdog (exit 1, no summary); a link there was followed, for reading and for writing. Now
/// neither is opened: the run goes on, finds actions by its poll, and stops cleanly.
#[test]
fn a_fifo_or_a_link_at_the_actions_signal_never_holds_up_a_run() {
    // Five requests at most: the mailbox acted on has none, so its actions need no call (and
    // no replication lag) and say only whether the run took them.
    let live = live(10, &format!("{RUN}\nmax_in_flight = 5"));
    let p = &live.p;
    let signal = p.path("state/mailwave.db.actions");
    let ok = Command::new("mkfifo").arg(&signal).status().unwrap();
    assert!(ok.success());
    let mut first = None;

    for round in ["a FIFO", "a link to /dev/zero"] {
        let log = format!("run-{}.log", round.len());
        let mut run = mailwave(p, &live.clock, &["run"], &log).spawn().unwrap();
        wait_for_requests(&live.base, 5, Duration::from_secs(20));
        let first = first
            .get_or_insert_with(|| {
                let made: Vec<String> = moves(&live.base)
                    .iter()
                    .filter_map(|m| m["identity"].as_str().map(str::to_string))
                    .collect();
                wave_members(p)
                    .into_iter()
                    .find(|a| !made.contains(a))
                    .expect("a mailbox without a request")
            })
            .clone();
        // An action while the run goes: the command neither blocks on the signal nor writes
        // through it, and the run applies the action by its poll (2 s).
        let action = if round == "a FIFO" { "hold" } else { "release" };
        let mut act = mailwave(
            p,
            &live.clock,
            &["mailbox", action, &first, "--wait", "20"],
            "act.log",
        )
        .spawn()
        .unwrap();
        let (status, _) = wait_within(
            &mut act,
            Duration::from_secs(25),
            &format!("mailbox {action} with {round} as the signal"),
            &p.path("act.log"),
        );
        let said = stdout_of(&mut act);
        assert_eq!(status.code(), Some(0), "{round}: {said}");
        assert!(said.contains("applied"), "{round}: {said}");
        sigterm(&run);
        let (status, _) = wait_within(
            &mut run,
            Duration::from_secs(15),
            &format!("SIGTERM with {round} as the signal"),
            &p.path(&log),
        );
        let out = stdout_of(&mut run);
        let text = std::fs::read_to_string(p.path(&log)).unwrap();
        assert_eq!(status.code(), Some(0), "{round}: {out}{text}");
        assert!(out.contains("run stopped"), "{round}: {out}");
        assert_eq!(
            text.matches("the actions signal is not a plain file")
                .count(),
            1,
            "{round}: warned once\n{text}"
        );
        std::fs::remove_file(&signal).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &signal).unwrap();
    }

    // With no run going, an action command does not write through a link to a file of the
    // operator's.
    std::fs::remove_file(&signal).unwrap();
    let victim = p.path("notes.txt");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, &signal).unwrap();
    let first = first.expect("acted on during the runs");
    let out = mailwave(
        p,
        &live.clock,
        &["mailbox", "hold", &first, "--wait", "10"],
        "act.log",
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(p.path("act.log")).unwrap()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

fn wave_members(p: &Project) -> Vec<String> {
    mailwave::store::Store::open_read_only(&p.db())
        .unwrap()
        .wave_addresses("mw-2027-02-01")
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 9: a configuration others can change was accepted by the commands that sign in,
/// though whoever can write it can point `authority` at a listener of theirs and receive the
/// secret. Now they refuse it, and a key others can read, as ssh does, naming the `chmod`.
#[test]
fn commands_that_sign_in_refuse_a_config_others_can_change_and_a_key_others_can_read() {
    // Every endpoint is a listener that records what reaches it: nothing may.
    let listener = crate::misbehave::Server::start(|_, _| crate::misbehave::token());
    let endpoints = format!(
        "[endpoints]\nauthority = \"{0}\"\nexchange = \"{0}\"\ngraph = \"{0}\"\n",
        listener.base
    );
    let p = Project::new(&format!("{SMALL_CONFIG}{endpoints}"));
    planned_estate(&p, 5, jiff::civil::date(2027, 3, 1));
    let config = p.path("mailwave.toml");
    let sign_in: [&[&str]; 3] = [
        &["run", "--once"],
        &["preflight"],
        &["inventory", "import", "--from-graph"],
    ];
    for wide in [0o664, 0o666, 0o646] {
        chmod(&config, wide);
        for args in sign_in {
            let out = p.run(args);
            let e = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} {wide:o}: {e}");
            // Named as the operator gave it (`--config`, here the default).
            assert!(
                e.contains("mailwave.toml can be changed by group or others")
                    && e.contains("`chmod go-w mailwave.toml`"),
                "{args:?}: {e}"
            );
        }
    }
    chmod(&config, 0o600);

    // A key others can read.
    let key = p.path("key.pem");
    std::fs::copy(fixture("test-cert.pem"), &key).unwrap();
    chmod(&key, 0o644);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "client_secret_env = \"MAILWAVE_TEST_SECRET\"",
        "certificate = \"key.pem\"",
    );
    std::fs::write(&config, text).unwrap();
    for args in sign_in {
        let out = p.run(args);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("key.pem holds the private key") && e.contains("`chmod 600 key.pem`"),
            "{args:?}: {e}"
        );
    }
    assert!(listener.requests().is_empty(), "nothing was sent anywhere");

    // Narrowed, it is used: the token endpoint is asked.
    chmod(&key, 0o600);
    let out = p.run(&["inventory", "import", "--from-graph"]);
    assert!(!stderr(&out).contains("chmod"), "{}", stderr(&out));
    assert!(
        listener
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/oauth2/v2.0/token")),
        "{}",
        stderr(&out)
    );
}

/// Finding 9, the folders: a state folder of the operator's that others can open is narrowed
/// (and says so); one of another user that others can write to is refused before anything is
/// written; folders mailwave makes are 0700.
#[test]
fn the_state_folder_is_the_operators_alone() {
    let p = Project::new(SMALL_CONFIG);
    std::fs::copy(fixture("estate.csv"), p.path("estate.csv")).unwrap();
    std::fs::create_dir(p.path("state")).unwrap();
    chmod(&p.path("state"), 0o755);
    let import = |state: &str| {
        binary(
            &p,
            None,
            &["--state", state, "inventory", "import", "estate.csv"],
        )
        .output()
        .unwrap()
    };
    let out = import("state/mailwave.db");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(&p.path("state")), 0o700);
    assert!(
        stderr(&out).contains("narrowed the state folder to its owner (0700, it was 0755)"),
        "{}",
        stderr(&out)
    );
    let out = import("fresh/deeper/mailwave.db");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for made in ["fresh", "fresh/deeper"] {
        assert_eq!(mode(&p.path(made)), 0o700, "{made}");
    }

    // Another user's folder that others can write to. As root one is made; otherwise /tmp is
    // one (root's, writable by all).
    let is_root = rustix::process::geteuid().is_root();
    let shared = if is_root {
        let shared = p.path("shared");
        std::fs::create_dir(&shared).unwrap();
        std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
        chmod(&shared, 0o777);
        shared
    } else {
        std::path::PathBuf::from("/tmp")
    };
    let db = shared.join(format!("mailwave-test-{}.db", std::process::id()));
    let out = import(db.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to another user"),
        "{}",
        stderr(&out)
    );
    assert!(!db.exists(), "nothing was written there");
}

/// Finding 13: an endpoint with a user name and password was refused, but the error echoed the
/// password; an empty tenant id was accepted and posted to `{authority}//oauth2/v2.0/token`.
#[test]
fn endpoint_credentials_are_never_echoed_and_a_tenant_must_be_one() {
    let p = Project::new(&format!(
        "{SMALL_CONFIG}[endpoints]\nexchange = \"https://svc-admin:Winter2027!@outlook.example\"\n"
    ));
    let out = p.run(&["inventory", "import", "--from-graph"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("endpoints.exchange") && e.contains("user name or password"),
        "{e}"
    );
    assert!(!e.contains("Winter2027") && !e.contains("svc-admin"), "{e}");

    let listener = crate::misbehave::Server::start(|_, _| crate::misbehave::token());
    let endpoints = format!(
        "[endpoints]\nauthority = \"{0}\"\nexchange = \"{0}\"\ngraph = \"{0}\"\n",
        listener.base
    );
    let p = Project::new(&format!(
        "{}{endpoints}",
        SMALL_CONFIG.replace("id = \"contoso.onmicrosoft.com\"", "id = \"\"")
    ));
    let out = p.run(&["inventory", "import", "--from-graph"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tenant.id"), "{}", stderr(&out));
    // Without the key at all, the commands that sign in refuse too, before any request.
    let p = Project::new(&format!(
        "{}{endpoints}",
        SMALL_CONFIG.replace("id = \"contoso.onmicrosoft.com\"\n", "")
    ));
    let out = p.run(&["inventory", "import", "--from-graph"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tenant.id must be set"),
        "{}",
        stderr(&out)
    );
    assert!(listener.requests().is_empty(), "nothing was posted");
}

/// Finding 7: operator input that ended in a panic (exit 101), each now a clear refusal (exit 2).
#[test]
fn operator_input_never_ends_in_a_panic() {
    let p = Project::new(SMALL_CONFIG);
    planned_estate(&p, 12, jiff::civil::date(2027, 3, 1));
    let refused = |args: &[&str], what: &str| {
        let out = p.run(args);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert!(e.contains(what), "{args:?}: {e}");
    };
    refused(
        &["watch", "--once", "--width", "65535", "--height", "65535"],
        "--width",
    );
    refused(&["watch", "--once", "--height", "65535"], "--height");
    refused(&["watch", "--interval", "1e300"], "--interval");
    refused(
        &[
            "--clock",
            "scaled:1e308:2026-11-21T10:00:00Z:2027-01-04T18:00:00Z",
            "status",
        ],
        "clock speed",
    );
    refused(&["sim", "serve", "--speed", "1e308"], "--speed");
    refused(&["demo", "--speed", "inf", "--dir", "d"], "--speed");
    assert!(!p.path("d").exists(), "the demo refused before it wrote");
    let out = p.run(&["watch", "--once", "--width", "500", "--height", "500"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).lines().all(|l| l.chars().count() <= 500));

    let config = p.path("mailwave.toml");
    for (key, text) in [
        (
            "notices.before",
            "[notices]\nbefore = [\"999999999999999d\"]\n",
        ),
        (
            "licences.before",
            "[licences]\nbefore = \"999999999999999d\"\n",
        ),
    ] {
        std::fs::write(&config, format!("{SMALL_CONFIG}{text}")).unwrap();
        refused(&["plan", "--dry-run"], key);
    }
    std::fs::write(&config, SMALL_CONFIG).unwrap();

    // A batch name with a multi-byte character where the name's ".b" is looked for.
    let odd = "mw-2027-01-0\u{e9}.b01.csv";
    assert_eq!(odd.len(), 22);
    let plan = p.path("schedules/test/plan.json");
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains("mw-2027-03-01.b001.csv"));
    std::fs::write(&plan, text.replacen("mw-2027-03-01.b001.csv", odd, 1)).unwrap();
    refused(&["plan", "--load", "schedules/test"], "plan.json");
    std::fs::write(p.path("schedules/test").join(odd), "EmailAddress\n").unwrap();
    refused(
        &["plan", "--start", "2027-03-01", "--name", "test"],
        "holds more than a mailwave plan",
    );
}
