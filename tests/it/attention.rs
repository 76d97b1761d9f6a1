//! "Needs a person" through the command line: one meaning for `status`, the reports, the run
//! summary, the alert and exit code 3, however a run ends; and operator actions visible afterwards
//! (who, what, why, how it went), with a name for who acted even without `$USER`.

use std::process::Command;

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};

use crate::helpers::*;
use crate::live::{CRASH_PROFILE, binary, config, mailwave, plan_with_binary, sim_serve};
use crate::misbehave::{Reply, Server};

/// The name the system gives the account the tests run as: what `--by` falls back to.
fn account() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `mailwave <args>` as cron runs it: no `$USER`, no `$LOGNAME`.
fn as_cron(p: &Project, args: &[&str]) -> std::process::Output {
    binary(p, None, args)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env("MAILWAVE_LOG", "warn")
        .output()
        .unwrap()
}

fn sql(p: &Project, statement: &str, address: &str) {
    rusqlite::Connection::open(p.db())
        .unwrap()
        .execute(statement, [address])
        .unwrap();
}

#[test]
fn needs_a_person_means_one_thing_in_status_and_the_reports_and_actions_are_listed() {
    let p = Project::new(SMALL_CONFIG);
    let plan = planned_estate(&p, 30, date(2027, 3, 1));
    let store = mailwave::store::Store::open_read_only(&p.db()).unwrap();
    let later = plan.waves.last().unwrap().id.clone();
    let members: Vec<String> = plan.waves[1..4]
        .iter()
        .flat_map(|w| store.wave_addresses(&w.id).unwrap())
        .collect();
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    assert!(m.len() >= 7, "{m:?}");
    // Failed for good, waiting for approval, failed but retried by the run, held by mailwave
    // with no wave left, no licence: as the run leaves them.
    for (address, class, message) in [
        (m[0], "permanent", "MapiExceptionNotFound: gone"),
        (m[1], "needs_approval", "DataConsistencyScore Investigate"),
        (m[2], "transient", "StalledDueToTarget"),
    ] {
        sql(
            &p,
            &format!(
                "UPDATE mailbox_state SET state = 7, failure_class = '{class}', last_error = '{message}'
                 WHERE mailbox_id = (SELECT id FROM mailboxes WHERE address = ?1)"
            ),
            address,
        );
    }
    sql(
        &p,
        "UPDATE mailbox_state SET state = 8 WHERE mailbox_id = (SELECT id FROM mailboxes WHERE address = ?1)",
        m[3],
    );
    sql(
        &p,
        "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail)
         SELECT 0, id, 3, 8, 'cutover', 'missed mw-2027-03-02 and no later wave is planned: re-plan'
         FROM mailboxes WHERE address = ?1",
        m[3],
    );
    sql(
        &p,
        "INSERT INTO licences (mailbox_id, status, reason, at)
         SELECT id, 'missing', 'no Exchange Online licence (licences.assign is off)', 0 FROM mailboxes WHERE address = ?1",
        m[4],
    );
    // An operator's hold, from cron (no $USER): it does not need a person, and its who is named.
    let out = as_cron(&p, &["mailbox", "hold", m[5], "--reason", "VIP asked"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let who = account();
    assert!(!who.is_empty());
    let out = as_cron(
        &p,
        &[
            "mailbox",
            "reschedule",
            m[6],
            "--to",
            &later,
            "--force",
            "--split",
            "--reason",
            "asked to go later",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = p.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["needs_person"],
        serde_json::json!({"failed_for_good": 1, "needs_approval": 1, "no_wave_left": 1, "no_licence": 1})
    );
    let text = stdout(&p.run(&["status"]));
    assert!(
        text.contains(
            "needs a person: 4 (1 failed for good, 1 waiting for approval, 1 held by mailwave: no later wave, 1 no licence)"
        ),
        "{text}"
    );

    let md = stdout(&p.run(&["report"]));
    assert!(md.contains("- **need a person**: 4"), "{md}");
    let section = |title: &str| -> String {
        let start = md
            .find(&format!("## {title}"))
            .unwrap_or_else(|| panic!("{md}"));
        let rest = &md[start + 3..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    };
    let needs = section("Needs attention");
    for a in [m[0], m[1], m[3], m[4]] {
        assert!(needs.contains(a), "{a}: {needs}");
    }
    for a in [m[2], m[5]] {
        assert!(!needs.contains(a), "{a}: {needs}");
    }
    assert!(
        needs.contains("no later wave is planned: re-plan"),
        "{needs}"
    );
    assert!(needs.contains("no licence (missing"), "{needs}");
    assert!(section("Will be retried by the run").contains(m[2]));
    let acts = section("Operator actions");
    assert!(
        acts.contains(&format!(
            "| {who} | hold | {} | VIP asked | applied 1 |",
            m[5]
        )),
        "{acts}"
    );
    assert!(
        acts.contains(&format!(
            "| {who} | reschedule to {later} | {} | asked to go later | applied 1 |",
            m[6]
        )),
        "{acts}"
    );
    assert!(!md.contains("unknown"), "{md}");
    let html = stdout(&p.run(&["report", "--format", "html"]));
    assert!(
        html.contains("<h2>Operator actions</h2>"),
        "operator actions in html"
    );
    assert!(html.contains(&format!("reschedule to {later}")));

    // The csv names a reschedule's wave, and who did it.
    let out = p.run(&["report", "--format", "csv", "--out", "all.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = std::fs::read_to_string(p.path("all.csv")).unwrap();
    assert!(
        csv.contains(&format!(
            "reschedule to {later} by {who} (asked to go later), split from its group: "
        )) && csv.contains(" -> applied"),
        "{csv}"
    );
}

/// The number at the start of each "need a person" alert the webhook got.
fn alerted(hook: &Server) -> Vec<u64> {
    hook.requests()
        .iter()
        .filter_map(|r| {
            let text = r.json()["text"].as_str()?.to_string();
            let n = text
                .strip_prefix("mailwave: ")?
                .split(" more mailbox(es) need a person")
                .next()?;
            text.contains("need a person (").then(|| n.parse().ok())?
        })
        .collect()
}

/// The alert and exit code 3 against `sim serve`, at 600x: transient failures the run resumes
/// never count, each mailbox that needs a person is alerted once across runs, every way a run
/// ends by itself exits 3 while one is left, and an operator's hold alone does not.
#[test]
fn only_what_needs_a_person_is_alerted_once_and_every_run_end_says_so() {
    let window: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let clock = format!(
        "scaled:600:{}:{}",
        Timestamp::now(),
        window - SignedDuration::from_hours(1)
    );
    let hook = Server::start(|_, _| Reply::Json(200, None));
    let schedule = "weekday_capacity = 40\nweekend_capacity = 40\ncutover_window = \"20:00-21:00\"\nprestage_days = 1";
    let run = format!(
        "requests_per_second = 100\nburst = 100\nresume_backoff = \"2m\"\ncutover_margin = \"10m\"\n\
         cutover_poll = \"2m\"\nprestage_poll = \"5m\"\nstop_grace = \"3s\"\ndcs_approval = \"never\"\n\
         [notify]\nwebhook_url = \"{}/hook\"\nfailure_threshold = 1",
        hook.base
    );
    let p = Project::new(&config("http://127.0.0.1:9", schedule, &run));
    let profile = CRASH_PROFILE
        .replace(
            "transient_failure_share = 0.03",
            "transient_failure_share = 0.25",
        )
        .replace(
            "permanent_failure_share = 0.0",
            "permanent_failure_share = 0.15",
        )
        .replace("injected_5xx_share = 0.01", "injected_5xx_share = 0.0");
    let (mut sim, base) = sim_serve(&p, &clock, &profile, &["--seed", "7"]);
    std::fs::write(p.path("mailwave.toml"), config(&base, schedule, &run)).unwrap();
    plan_with_binary(&p, &clock, 30, "2027-02-01");
    let step = |args: &[&str]| -> (Option<i32>, String) {
        let out = mailwave(&p, &clock, args, "step.log")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &std::fs::read_to_string(p.path("step.log")).unwrap_or_default(),
        )
    };
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(p.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    let needs_person = || -> u64 {
        let (_, out) = step(&["status", "--json"]);
        let start = out.find('{').unwrap();
        let v: serde_json::Value = serde_json::Deserializer::from_str(&out[start..])
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        v["needs_person"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };

    // An operator holds one before the run: listed with its reason, never counted.
    let (code, out) = step(&[
        "mailbox",
        "hold",
        "user0005@contoso.com",
        "--reason",
        "VIP asked",
        "--by",
        "alice",
    ]);
    assert_eq!(code, Some(0), "{out}");

    // Past the window: the run ends by --until and says a person must act.
    let (code, out) = step(&["run", "--until", "2027-02-01T21:30:00Z"]);
    assert_eq!(code, Some(3), "{out}");
    let needing = needs_person();
    assert!(needing > 0, "the profile fails some moves for good\n{out}");
    assert!(
        out.contains(&format!("{needing} mailbox(es) need a person:")),
        "{out}"
    );
    assert!(
        out.contains(
            "1 mailbox(es) held by an operator (mailwave mailbox release):\n  user0005@contoso.com (mw-2027-02-01): held by alice: VIP asked"
        ),
        "{out}"
    );
    // Transient failures were resumed and moved; none of them was alerted.
    let resumed = count(
        "SELECT COUNT(DISTINCT e.mailbox_id) FROM events e JOIN mailbox_state s ON s.mailbox_id = e.mailbox_id
         WHERE e.to_state = 7 AND s.state IN (5, 6)",
    );
    assert!(resumed > 0, "the profile fails some moves for a while");
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM alerted a JOIN mailbox_state s ON s.mailbox_id = a.mailbox_id
             WHERE s.state IN (5, 6)"
        ),
        0
    );
    // Each mailbox that needs a person was alerted once, whatever the alerts' number.
    let posted = alerted(&hook);
    assert!(!posted.is_empty(), "an alert went");
    assert_eq!(posted.iter().sum::<u64>(), needing);
    assert_eq!(count("SELECT COUNT(*) FROM alerted") as u64, needing);

    // Every other way a run ends by itself says so too, and no alert repeats.
    let (code, out) = step(&["run", "--once"]);
    assert_eq!(code, Some(3), "{out}");
    let (code, out) = step(&["run"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("run finished"), "{out}");
    assert_eq!(
        alerted(&hook),
        posted,
        "nothing alerted twice across restarts"
    );

    // Skipped, they need nobody: the operator's hold alone leaves a clean exit, and their
    // alerts are forgotten (a new need of theirs would be alerted anew).
    let failed: Vec<String> = {
        let conn = rusqlite::Connection::open(p.db()).unwrap();
        let mut q = conn
            .prepare(
                "SELECT m.address FROM mailboxes m JOIN alerted a ON a.mailbox_id = m.id ORDER BY 1",
            )
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut args = vec!["mailbox", "skip", "--reason", "left for the next project"];
    args.extend(failed.iter().map(String::as_str));
    let (code, out) = step(&args);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(needs_person(), 0);
    let (code, out) = step(&["run", "--once"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no mailbox needs a person"), "{out}");
    assert_eq!(count("SELECT COUNT(*) FROM alerted"), 0);
    let _ = sim.kill();
    let _ = sim.wait();

    // Who skipped them has a name though cron gave none.
    let report = stdout(&p.run(&["report"]));
    assert!(
        report.contains(&format!(
            "| {} | skip | {}",
            account(),
            if failed.len() == 1 {
                failed[0].clone()
            } else {
                format!("{} (", failed.len())
            }
        )),
        "{report}"
    );
    // The action commands applied their actions themselves (no run was going): the webhook heard
    // of no "run" of theirs, and the report's runs are the ones that worked the waves.
    let outcomes: Vec<String> = hook
        .requests()
        .iter()
        .filter_map(|r| r.json()["summary"]["outcome"].as_str().map(str::to_string))
        .collect();
    assert!(!outcomes.is_empty(), "the runs posted their summaries");
    assert!(outcomes.iter().all(|o| o != "actions"), "{outcomes:?}");
    assert!(!report.contains("(actions)"), "{report}");
}
