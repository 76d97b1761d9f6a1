//! Secrets never leave: recognisable markers for the client secret, a wrong secret, the webhook's
//! token and the certificate's private key go into a demo, a run against `sim serve` that is killed
//! and resumed, a run whose secret is refused and a run with a certificate; then every file written
//! (database and WAL included), every log line, every output and every webhook post is searched.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::helpers::*;
use crate::misbehave::{Reply, Server};

const SECRET: &str = "SECRET-MARK-1-9f8e7d6c";
const WRONG: &str = "SECRET-MARK-2-wrong-5a4b";
const HOOK_TOKEN: &str = "WEBHOOK-TOKEN-MARK-3-c2d1";

/// Every file below `dir`, read whole.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn config(endpoint: &str, credential: &str, hook: &str) -> String {
    format!(
        r#"[tenant]
id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
{credential}
[endpoints]
authority = "{endpoint}"
exchange = "{endpoint}"
graph = "{endpoint}"
[migration]
remote_host_name = "hybrid.contoso.com"
target_delivery_domain = "contoso.mail.onmicrosoft.com"
[schedule]
weekday_capacity = 5000
weekend_capacity = 5000
cutover_window = "20:00-20:30"
prestage_days = 1
bank_holidays = "schedules/uk-bank-holidays.json"
[run]
requests_per_second = 200
burst = 200
cutover_poll = "1m"
stop_grace = "3s"
[notify]
webhook_url_env = "{hook}"
failure_threshold = 1
"#
    )
}

#[test]
fn no_secret_reaches_a_file_a_log_an_error_or_a_post() {
    let hook = Server::start(|_, _| Reply::Json(200, None));
    let hook_url = format!("{}/hooks/{HOOK_TOKEN}", hook.base);
    let key_line = std::fs::read_to_string(fixture("test-cert.pem"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut dirs: Vec<tempfile::TempDir> = Vec::new();
    let run = |p: &Project, clock: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailwave"));
        c.args(args)
            .current_dir(p.dir.path())
            .env("MAILWAVE_CLOCK", clock)
            .env("MAILWAVE_LOG", "debug")
            .env("MW_HOOK", &hook_url);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };

    // The demo, with the secret in its environment.
    let demo = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args([
            "demo",
            "--mailboxes",
            "300",
            "--speed",
            "20000",
            "--dir",
            "d",
        ])
        .current_dir(demo.path())
        .env("MAILWAVE_CLIENT_SECRET", SECRET)
        .env("MAILWAVE_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    outputs.push(("demo stdout".into(), out.stdout));
    outputs.push(("demo stderr".into(), out.stderr));
    dirs.push(demo);

    // sim serve: accepts SECRET, and assertions signed by the test certificate.
    let window: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window - SignedDuration::from_mins(10);
    let clock = format!("scaled:120:{}:{origin}", Timestamp::now());
    let sim_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        sim_dir.path().join("profile.toml"),
        format!(
            "client_secret = {SECRET:?}\ncertificate = {:?}\nreplication_lag_seconds = 1.0\n",
            fixture("test-cert-public.pem")
        ),
    )
    .unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args(["sim", "serve", "--profile", "profile.toml"])
        .current_dir(sim_dir.path())
        .env("MAILWAVE_CLOCK", &clock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = crate::live::sim_base(&mut sim);

    // A run with the secret: killed mid-create, resumed to the end, text and JSON logs.
    let secret_cred = "client_secret_env = \"MW_SEC\"";
    let p = Project::new(&config(&base, secret_cred, "MW_HOOK"));
    planned_estate(&p, 80, jiff::civil::date(2027, 2, 1));
    let env = [("MW_SEC", SECRET)];
    let mut child = run(&p, &clock, &["--log-file", "state/run.log", "run"], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    outputs.push(("killed run stdout".into(), killed.stdout));
    outputs.push(("killed run stderr".into(), killed.stderr));
    let out = run(
        &p,
        &clock,
        &[
            "--log-format",
            "json",
            "--log-file",
            "state/run.json",
            "run",
        ],
        &env,
    )
    .output()
    .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        stderr(&out)
    );
    outputs.push(("run stdout".into(), out.stdout));
    outputs.push(("run stderr".into(), out.stderr));
    for args in [&["status", "--json"][..], &["report"], &["watch", "--once"]] {
        let out = run(&p, &clock, args, &env).output().unwrap();
        outputs.push((format!("{args:?}"), [out.stdout, out.stderr].concat()));
    }
    dirs.push(p.dir);

    // A run whose secret is refused.
    let p = Project::new(&config(&base, secret_cred, "MW_HOOK"));
    planned_estate(&p, 10, jiff::civil::date(2027, 2, 1));
    let out = run(&p, &clock, &["run", "--once"], &[("MW_SEC", WRONG)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("AADSTS7000215"), "{}", stderr(&out));
    outputs.push(("refused run".into(), [out.stdout, out.stderr].concat()));
    dirs.push(p.dir);

    // A run with a certificate: a copy of the fixture only its owner can read (a checkout's is
    // 0644, which mailwave refuses as ssh does).
    // It lives outside the project: the folders searched below are what mailwave wrote.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key.pem");
    std::fs::copy(fixture("test-cert.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let p = Project::new(&config(&base, &format!("certificate = {key:?}"), "MW_HOOK"));
    planned_estate(&p, 10, jiff::civil::date(2027, 2, 1));
    let out = run(&p, &clock, &["run", "--once"], &[]).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        stderr(&out)
    );
    outputs.push(("certificate run".into(), [out.stdout, out.stderr].concat()));
    dirs.push(p.dir);
    sim.kill().unwrap();
    sim.wait().unwrap();

    let mut written = Vec::new();
    for d in &dirs {
        files(d.path(), &mut written);
    }
    assert!(
        written.iter().any(|(name, _)| name.ends_with("run.json")),
        "the JSON log was written"
    );
    let posts: Vec<(String, Vec<u8>)> = hook
        .requests()
        .into_iter()
        .map(|r| ("webhook post".to_string(), r.body))
        .collect();
    assert!(!posts.is_empty(), "the webhook was posted to");
    for (name, bytes) in written.iter().chain(&outputs).chain(&posts) {
        for (what, marker) in [
            ("the client secret", SECRET),
            ("a refused secret", WRONG),
            ("the webhook's token", HOOK_TOKEN),
            ("the private key", key_line.as_str()),
            ("an access token", "mwsim."),
        ] {
            assert!(!contains(bytes, marker), "{what} is in {name}");
        }
    }
}
