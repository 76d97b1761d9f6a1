//! The run engine end to end against the in-process simulator, on tokio's paused clock so that weeks
//! of waves run in seconds.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use mailwave::engine::session::{self, Session};
use mailwave::engine::{RunOptions, RunSummary};
use mailwave::exchange::ExchangeClient;
use mailwave::exchange::MoveService;
use mailwave::sim::transport::LocalTransport;
use mailwave::sim::{Profile, Simulator};
use mailwave::store::Store;
use mailwave::time::Clock;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

pub fn busy_profile() -> Profile {
    Profile {
        max_concurrent_migrations: 300,
        throughput_gb_per_hour: 3_000.0,
        max_concurrent_completions: 400,
        finalization_minutes: 8.0,
        stall_share: 0.05,
        transient_failure_share: 0.03,
        permanent_failure_share: 0.005,
        dcs_investigate_share: 0.01,
        dcs_poor_share: 0.005,
        replication_lag_seconds: 30.0,
        injected_5xx_share: 0.005,
        exchange_requests_per_second: 20.0,
        exchange_burst: 40,
        ..Profile::default()
    }
}

pub fn engine_config(weekday: u32, weekend: u32, extra: &str) -> String {
    format!(
        "{}\n[run]\nrequests_per_second = 25\nburst = 40\nmax_parallel_calls = 16\nresume_backoff = \"10m\"\n\
         dcs_approval = \"investigate\"\n{extra}\n",
        SMALL_CONFIG
            .replace(
                "weekday_capacity = 3",
                &format!("weekday_capacity = {weekday}")
            )
            .replace(
                "weekend_capacity = 5",
                &format!("weekend_capacity = {weekend}")
            )
            .replace("prestage_days = 7", "prestage_days = 2")
    )
}

pub struct Outcome {
    pub summary: RunSummary,
    pub sim: Arc<Simulator>,
    pub plan: mailwave::plan::Plan,
}

/// Plans `n` mailboxes from `start` and runs them to the end on the paused clock.
pub async fn run_to_end(
    p: &Project,
    n: usize,
    start: jiff::civil::Date,
    profile: Profile,
    options: RunOptions,
) -> Outcome {
    let plan = planned_estate(p, n, start);
    let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
    let clock = Clock::tokio(origin, 1.0);
    let sim = Arc::new(Simulator::new(profile, 5, clock).unwrap());
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
    let summary = run_session(p, clock, service, options).await;
    Outcome { summary, sim, plan }
}

/// A run session on the paused clock, as the command line runs one.
pub async fn run_session<S: MoveService>(
    p: &Project,
    clock: Clock,
    service: Arc<S>,
    options: RunOptions,
) -> RunSummary {
    run_session_at(&p.db(), &p.config(), clock, service, options).await
}

/// A run session on the paused clock over the database at `db`.
pub async fn run_session_at<S: MoveService>(
    db: &std::path::Path,
    config: &mailwave::config::Config,
    clock: Clock,
    service: Arc<S>,
    options: RunOptions,
) -> RunSummary {
    run_session_mailing(db, config, clock, service, options, None).await
}

/// A run of the project's plan against `sim` on `clock`, in the background, as the command line
/// starts one.
pub fn spawn_run(
    p: &Project,
    clock: Clock,
    sim: &Arc<Simulator>,
) -> tokio::task::JoinHandle<RunSummary> {
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
    let (db, config) = (p.db(), p.config());
    tokio::spawn(async move {
        run_session_at(&db, &config, clock, service, RunOptions::default()).await
    })
}

/// The same, with notices sent through `mailer`.
pub async fn run_session_mailing<S: MoveService>(
    db: &std::path::Path,
    config: &mailwave::config::Config,
    clock: Clock,
    service: Arc<S>,
    options: RunOptions,
    mailer: Option<mailwave::engine::session::GraphServices>,
) -> RunSummary {
    run_session_reporting(db, config, clock, service, options, mailer, None).await
}

/// The same, publishing its progress on `progress`.
pub async fn run_session_reporting<S: MoveService>(
    db: &std::path::Path,
    config: &mailwave::config::Config,
    clock: Clock,
    service: Arc<S>,
    options: RunOptions,
    mailer: Option<mailwave::engine::session::GraphServices>,
    progress: Option<tokio::sync::watch::Sender<mailwave::engine::Snapshot>>,
) -> RunSummary {
    session::run(Session {
        service,
        state: db,
        config,
        clock,
        options,
        command: "test",
        paused_time: true,
        stop: CancellationToken::new(),
        ending: CancellationToken::new(),
        progress,
        mailer,
    })
    .await
    .unwrap()
    .summary
}

/// Checks that no move started its cut-over outside the window of the wave it belonged to then
/// (identified by its CompleteAfter, which is that wave's window start).
/// (identity, CompleteAfter, when its cut-over started) of one move on the service.
pub type Cutover = (String, Option<Timestamp>, Option<Timestamp>);

pub fn assert_cutovers_inside_windows(
    windows: &HashMap<Timestamp, Timestamp>,
    moves: &[Cutover],
) -> usize {
    let mut checked = 0;
    for (who, complete_after, started) in moves {
        let (Some(after), Some(started)) = (complete_after, started) else {
            continue;
        };
        let end = windows
            .get(after)
            .unwrap_or_else(|| panic!("{who}: CompleteAfter {after} is no wave's window start"));
        assert!(
            started >= after && started < end,
            "{who}: cut over at {started}, outside {after}..{end}"
        );
        checked += 1;
    }
    checked
}

#[tokio::test(start_paused = true)]
async fn a_multi_week_plan_runs_to_completion_with_everything_switched_on() {
    let p = Project::new(&engine_config(180, 400, ""));
    let out = run_to_end(
        &p,
        4_000,
        date(2027, 1, 4),
        busy_profile(),
        RunOptions::default(),
    )
    .await;
    let s = &out.summary;
    assert_eq!(s.outcome, "finished", "{s:#?}");
    let weeks = (out.plan.waves.last().unwrap().date - out.plan.waves[0].date).get_days();
    assert!(weeks >= 14, "a multi-week plan: {weeks} days");

    // Every mailbox completed, or listed for the operator with a reason.
    let store = Store::open_read_only(&p.db()).unwrap();
    let mut q = store
        .conn()
        .prepare("SELECT m.address, s.state, s.last_error FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id")
        .unwrap();
    let rows: Vec<(String, i64, Option<String>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len() as u64, out.plan.mailboxes);
    let mut attention = 0;
    for (address, state, error) in &rows {
        match state {
            5 | 6 => {}
            7 | 8 => {
                attention += 1;
                assert!(
                    error.as_deref().is_some_and(|e| !e.is_empty()),
                    "{address} needs attention without a reason"
                );
            }
            other => panic!("{address} ended in state {other}"),
        }
    }
    assert!(
        attention > 0,
        "permanent failures and Poor scores were switched on"
    );
    let failed = rows.iter().filter(|r| r.1 == 7).count();
    assert!(
        failed > 0,
        "permanent failures stay failed, with their reason, in their wave"
    );
    assert!(attention < rows.len() / 20, "{attention} need attention");

    // Exactly one successful New-MoveRequest per mailbox.
    let (creates, moves): (Vec<u32>, Vec<Cutover>) = out.sim.with_moves(|m| {
        m.moves()
            .iter()
            .map(|mv| {
                (
                    mv.creates,
                    (
                        m.identity_of(mv).to_string(),
                        mv.complete_after(),
                        mv.completion_started(),
                    ),
                )
            })
            .unzip()
    });
    assert!(creates.iter().all(|&c| c == 1));
    assert_eq!(
        moves.len() as u64,
        out.plan.mailboxes,
        "one request per mailbox, none lost, none doubled"
    );

    // No cut-over outside its window.
    let windows: HashMap<Timestamp, Timestamp> = out
        .plan
        .waves
        .iter()
        .map(|w| (w.window_start_utc, w.window_end_utc))
        .collect();
    let checked = assert_cutovers_inside_windows(&windows, &moves);
    assert!(checked as u64 > out.plan.mailboxes * 9 / 10);

    // The service was busy at the edges, and the engine coped.
    let stats = out.sim.stats();
    assert!(
        stats.throttled > 0,
        "the request budget was reached: {stats:?}"
    );
    assert!(stats.injected_faults > 0);
    assert!(
        s.api_calls["Resume-MoveRequest"]["ok"] > 0,
        "transient failures were resumed"
    );
    assert!(
        s.api_calls["Set-MoveRequest"]["ok"] > 0,
        "Investigate scores were approved"
    );
    // Besides the statistics reads for move figures (run.collect_statistics = "all"), counted
    // apart and bounded below.
    let figure_reads: u64 = s
        .api_calls
        .get(mailwave::engine::jobs::FIGURES)
        .map(|o| o.values().sum())
        .unwrap_or(0);
    let per_mailbox = (s.api_calls_total - figure_reads) as f64 / out.plan.mailboxes as f64;
    assert!(
        per_mailbox < 4.0,
        "{per_mailbox} calls a mailbox: {:#?}",
        s.api_calls
    );
    let figures = store.figures_count().unwrap();
    let finished = rows.iter().filter(|r| matches!(r.1, 5 | 6)).count() as u64;
    assert!(
        figures >= finished && figures <= rows.len() as u64,
        "figures for every finished move: {figures} for {finished} finished"
    );
    assert!(
        (figure_reads as f64) < 1.5 * finished as f64,
        "about one statistics read a finished move (429s retried): {figure_reads} for {finished}"
    );
    // A move that failed and later completed is read twice; its row keeps the last read.
    assert!(
        s.figures_collected >= figures,
        "{} >= {figures}",
        s.figures_collected
    );
}

fn cutovers(sim: &Simulator) -> Vec<Cutover> {
    sim.with_moves(|m| {
        m.moves()
            .iter()
            .map(|mv| {
                (
                    m.identity_of(mv).to_string(),
                    mv.complete_after(),
                    mv.completion_started(),
                )
            })
            .collect()
    })
}

fn windows(plan: &mailwave::plan::Plan) -> HashMap<Timestamp, Timestamp> {
    plan.waves
        .iter()
        .map(|w| (w.window_start_utc, w.window_end_utc))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_window_across_the_clock_change_cuts_over_in_its_eleven_hours() {
    let p = Project::new(&engine_config(250, 250, ""));
    let profile = Profile {
        dcs_poor_share: 0.0,
        permanent_failure_share: 0.0,
        ..busy_profile()
    };
    let out = run_to_end(&p, 700, date(2026, 10, 23), profile, RunOptions::default()).await;
    assert_eq!(out.summary.outcome, "finished");
    let autumn = out
        .plan
        .waves
        .iter()
        .find(|w| w.id == "mw-2026-10-24")
        .unwrap();
    assert_eq!(autumn.window_start_utc.to_string(), "2026-10-24T19:00:00Z");
    assert_eq!(autumn.window_end_utc.to_string(), "2026-10-25T06:00:00Z");
    let moves = cutovers(&out.sim);
    let in_autumn = moves
        .iter()
        .filter(|m| m.1 == Some(autumn.window_start_utc) && m.2.is_some())
        .count();
    assert!(in_autumn > 200, "{in_autumn} cut over in the DST window");
    assert_cutovers_inside_windows(&windows(&out.plan), &moves);
}

#[tokio::test(start_paused = true)]
async fn mailboxes_that_miss_their_window_move_to_the_next_wave_with_the_reason() {
    // No pre-staging and slow copies: part of each wave cannot be ready before its window closes.
    let config = engine_config(180, 180, "").replace("prestage_days = 2", "prestage_days = 0");
    let p = Project::new(&config);
    let profile = Profile {
        max_concurrent_migrations: 100,
        base_move_minutes: 300.0,
        dcs_poor_share: 0.0,
        permanent_failure_share: 0.0,
        ..busy_profile()
    };
    let out = run_to_end(&p, 700, date(2027, 3, 1), profile, RunOptions::default()).await;
    let s = &out.summary;
    assert!(s.rescheduled > 0, "{s:#?}");
    let store = Store::open_read_only(&p.db()).unwrap();
    let detail: String = store
        .conn()
        .query_row(
            "SELECT detail FROM events WHERE cause = 'reschedule' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        detail.contains("when its window closed); cut-over moved to mw-2027-03-0"),
        "{detail}"
    );
    let moved: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(DISTINCT mailbox_id) FROM events WHERE cause = 'reschedule'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(moved > 0);
    // Nobody cut over late; everyone got there in a later window.
    let checked = assert_cutovers_inside_windows(&windows(&out.plan), &cutovers(&out.sim));
    let done = s.states["completed"] + s.states["completed_with_warning"];
    assert!(done as usize >= checked && done > 600, "{s:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_reads_the_figures_an_earlier_run_did_not() {
    // The first run collects nothing (as if it had been killed before reading any figures).
    let p = Project::new(&engine_config(180, 400, "collect_statistics = \"none\""));
    let out = run_to_end(
        &p,
        300,
        date(2027, 1, 4),
        Profile::default().without_failures(),
        RunOptions::default(),
    )
    .await;
    assert_eq!(out.summary.outcome, "finished");
    let store = Store::open_read_only(&p.db()).unwrap();
    assert_eq!(store.figures_count().unwrap(), 0);
    let finished = store.completed_without_figures(0).unwrap().len() as u64;
    assert_eq!(finished, out.plan.mailboxes);
    drop(store);

    // The next run owes them all, reads each once, and finishes.
    std::fs::write(
        p.path("mailwave.toml"),
        engine_config(180, 400, "collect_statistics = \"all\""),
    )
    .unwrap();
    let clock = out.sim.clock();
    let service = Arc::new(ExchangeClient::new(
        LocalTransport::new(out.sim.clone()),
        clock,
    ));
    let s = run_session(&p, clock, service, RunOptions::default()).await;
    assert_eq!(s.outcome, "finished", "{s:#?}");
    assert_eq!(s.figures_collected, finished);
    assert_eq!(
        s.api_calls[mailwave::engine::jobs::FIGURES]["ok"],
        finished,
        "{:#?}",
        s.api_calls
    );
    let store = Store::open_read_only(&p.db()).unwrap();
    assert_eq!(store.figures_count().unwrap(), finished);
    assert!(store.completed_without_figures(0).unwrap().is_empty());
}

/// The progress line says what the run waits for next; a wave whose window has closed (still
/// looked at for a move waiting for approval) is never that.
#[tokio::test(start_paused = true)]
async fn the_progress_line_never_waits_for_a_closed_window() {
    let p = Project::new(
        &engine_config(20, 20, "")
            .replace("dcs_approval = \"investigate\"", "dcs_approval = \"never\""),
    );
    let plan = planned_estate(&p, 60, date(2027, 1, 4));
    let first = &plan.waves[0];
    let clock = Clock::tokio(
        first.prestage_start_utc - SignedDuration::from_hours(1),
        1.0,
    );
    let profile = Profile {
        dcs_investigate_share: 0.5,
        transient_failure_share: 0.0,
        permanent_failure_share: 0.0,
        dcs_poor_share: 0.0,
        injected_5xx_share: 0.0,
        ..Profile::default()
    };
    let sim = Arc::new(Simulator::new(profile, 5, clock).unwrap());
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim), clock));
    let closed = first.window_end_utc + SignedDuration::from_hours(2);
    let options = |until| RunOptions {
        until: Some(until),
        ..RunOptions::default()
    };
    run_session(&p, clock, service.clone(), options(closed)).await;
    let waiting = Store::open_read_only(&p.db())
        .unwrap()
        .status(clock.now(), Some(&first.id))
        .unwrap()
        .waves[0]
        .states["failed"];
    assert!(waiting > 0, "some of the first wave wait for approval");

    // A second run, after that window: what its first progress line says it waits for.
    let (tx, mut rx) = tokio::sync::watch::channel(mailwave::engine::Snapshot::default());
    let lines = tokio::spawn(async move {
        let mut lines = Vec::new();
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            if let Some(now) = s.now {
                lines.push((now, mailwave::ui::progress::line(&s)));
            }
        }
        lines
    });
    run_session_reporting(
        &p.db(),
        &p.config(),
        clock,
        service,
        options(clock.now() + SignedDuration::from_hours(1)),
        None,
        Some(tx),
    )
    .await;
    let lines = lines.await.unwrap();
    assert!(!lines.is_empty());
    for (now, line) in &lines {
        let next = line.split(" · next: ").nth(1).unwrap_or("");
        for w in plan.waves.iter().filter(|w| w.window_end_utc <= *now) {
            assert!(!next.contains(&w.id), "{line}");
        }
    }
}

/// One writer (DESIGN.md): the notices, licences and alerts beside the coordinator read on
/// connections of their own and write through the writer thread; nothing in the engine opens a
/// writing connection, except the run's own record, made before the writer starts and closed
/// after it ends (`engine/session.rs`).
#[test]
fn the_engine_writes_only_through_the_writer() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let engine = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    sources(&engine, &mut files);
    let mut writing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let opens = ["Store::open(", "Store::create(", "Connection::open"]
                .iter()
                .any(|o| line.contains(o));
            if opens && !file.ends_with("session.rs") {
                writing.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    assert!(writing.is_empty(), "{writing:#?}");
}

/// A run that starts after a window closed, during which the service cut the wave over on its own
/// (its requests' CompleteAfter fell in the window and no run was going). The walk of issue 19
/// saw such a run move those mailboxes on as if nothing had happened: `Set-MoveRequest` errors
/// against completed moves, a delegation group reported split, cut-overs two days old counted as
/// its own. It reads the wave's batch first, then closes the window on what it found.
#[tokio::test(start_paused = true)]
async fn a_run_after_a_missed_window_reads_what_the_service_did_before_moving_anything() {
    let p = Project::new(&engine_config(40, 60, ""));
    let plan = planned_estate(&p, 120, date(2027, 1, 4));
    let w0 = &plan.waves[0];
    let clock = Clock::tokio(w0.prestage_start_utc - SignedDuration::from_hours(1), 1.0);
    let quiet = Profile {
        throughput_gb_per_hour: 3_000.0,
        stall_share: 0.0,
        transient_failure_share: 0.0,
        permanent_failure_share: 0.0,
        dcs_investigate_share: 0.0,
        dcs_poor_share: 0.0,
        injected_5xx_share: 0.0,
        ..Profile::default()
    };
    let sim = Arc::new(Simulator::new(quiet, 5, clock).unwrap());
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
    let until = |t: Timestamp| RunOptions {
        until: Some(t),
        ..RunOptions::default()
    };
    // The first run pre-stages the wave and ends an hour before its window.
    let first = run_session(
        &p,
        clock,
        service.clone(),
        until(w0.window_start_utc - SignedDuration::from_hours(1)),
    )
    .await;
    assert_eq!(first.outcome, "until", "{first:#?}");
    let wave_of = |state: &str| -> u64 {
        let code = (0..16)
            .filter_map(mailwave::store::State::from_code)
            .find(|s| s.name() == state)
            .unwrap()
            .code();
        let conn = rusqlite::Connection::open(p.db()).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM mailbox_state s JOIN waves w ON w.id = s.wave_id
             WHERE w.name = ?1 AND s.state = ?2",
            rusqlite::params![w0.id, code],
            |r| r.get::<_, i64>(0).map(|n| n as u64),
        )
        .unwrap()
    };
    assert!(wave_of("synced") > 0, "pre-staged");
    // No run through the window: the service cuts the wave over on its own.
    clock
        .sleep(w0.window_end_utc.duration_since(clock.now()) + SignedDuration::from_hours(6))
        .await;
    let done_on_service = sim.with_moves(|s| {
        s.moves()
            .iter()
            .filter(|m| !m.is_removed() && m.status.name().starts_with("Completed"))
            .count()
    }) as u64;
    assert!(done_on_service > 0);
    let second = run_session(
        &p,
        clock,
        service,
        until(clock.now() + SignedDuration::from_hours(1)),
    )
    .await;
    assert_eq!(second.groups_split, 0, "{second:#?}");
    let set_errors: u64 = second
        .api_calls
        .get("Set-MoveRequest")
        .map(|c| {
            c.iter()
                .filter(|(k, _)| k.as_str() != "ok")
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(set_errors, 0, "{:?}", second.api_calls);
    assert_eq!(
        wave_of("completed") + wave_of("completed_with_warning"),
        done_on_service,
        "each move the service finished is recorded in its own wave"
    );
}
