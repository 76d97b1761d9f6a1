//! The promise that nothing cuts over outside a window of the wave the mailbox then belongs to,
//! whatever the operator does: random sequences of actions (hold, release, retry, skip,
//! reschedule, approve; wave hold, release and reschedule) at random times, each recorded as the
//! command line records it, against a run on the paused clock and the in-process simulator. The
//! check reads the simulator's own records: when each move's cut-over started, and its batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use mailwave::engine::policy::{self, ActionStep};
use mailwave::plan::Calendar;
use mailwave::sim::{Profile, Simulator};
use mailwave::store::actions::{self, ActionKind, ActionRequest, MailboxFacts, WaveInfo};
use mailwave::store::{FailureClass, State, Store};
use mailwave::time::Clock;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::engine::{engine_config, spawn_run};
use crate::helpers::*;

/// One operator action. Indices pick among the mailboxes (or waves) it can be asked of at that
/// moment, as the command line would accept it.
#[derive(Debug, Clone)]
enum Act {
    Mailbox {
        kind: ActionKind,
        pick: usize,
        force: bool,
        to: usize,
    },
    WaveHold(usize),
    WaveRelease(usize),
    WaveReschedule {
        wave: usize,
        days: i64,
    },
}

fn act() -> impl Strategy<Value = Act> {
    // The actions that may let a mailbox complete come up more often.
    let kind = prop_oneof![
        2 => Just(ActionKind::Hold),
        3 => Just(ActionKind::Release),
        3 => Just(ActionKind::Retry),
        1 => Just(ActionKind::Skip),
        2 => Just(ActionKind::Reschedule),
        3 => Just(ActionKind::Approve),
    ];
    prop_oneof![
        8 => (kind, 0..1000usize, any::<bool>(), 0..50usize)
            .prop_map(|(kind, pick, force, to)| Act::Mailbox { kind, pick, force, to }),
        1 => (0..50usize).prop_map(Act::WaveHold),
        1 => (0..50usize).prop_map(Act::WaveRelease),
        1 => (0..50usize, 1..5i64).prop_map(|(wave, days)| Act::WaveReschedule { wave, days }),
    ]
}

/// What one run saw, summed over the cases so that the test shows it exercised what matters.
#[derive(Debug, Default, Clone)]
struct Tally {
    recorded: u64,
    /// Applied in a later window than the one asked for (its own had closed, or the target had).
    moved_on: u64,
    /// Refused by the run because no window was left.
    no_window: u64,
    /// Approvals and retries asked after the mailbox's own window had closed.
    late: u64,
    cut_over: u64,
}

fn class(f: &MailboxFacts) -> Option<FailureClass> {
    f.failure_class.as_deref().and_then(FailureClass::from_name)
}

fn step(kind: ActionKind, f: &MailboxFacts, force: bool) -> ActionStep {
    policy::action_step(kind, f.state, class(f), f.has_request, false, force)
}

fn record(db: &std::path::Path, requests: &[ActionRequest], now: Timestamp) -> u64 {
    if requests.is_empty() {
        return 0;
    }
    Store::open(db)
        .unwrap()
        .record_actions(requests, now)
        .unwrap();
    actions::signal(db);
    requests.len() as u64
}

fn request(f: &MailboxFacts, kind: ActionKind, force: bool, to: Option<i64>) -> ActionRequest {
    ActionRequest {
        mailbox_id: f.id,
        kind,
        by: "property".into(),
        reason: None,
        target_wave: to,
        force,
        split: None,
        silent: false,
    }
}

/// Records `act` at `now` as the command line would, or nothing where it would refuse.
fn ask(db: &std::path::Path, calendar: &Calendar, act: &Act, now: Timestamp, tally: &mut Tally) {
    let store = Store::open_read_only(db).unwrap();
    let waves: Vec<WaveInfo> = store
        .waves_for_cutover()
        .unwrap()
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    let everyone: Vec<MailboxFacts> = waves
        .iter()
        .flat_map(|w| store.wave_facts(&w.name).unwrap())
        .collect();
    let window_end: HashMap<&str, Timestamp> = waves
        .iter()
        .map(|w| (w.name.as_str(), w.window_end))
        .collect();
    let wave_of = |i: usize| &waves[i % waves.len()];
    let eligible = |wave: &str, kind: ActionKind| -> Vec<MailboxFacts> {
        store
            .wave_facts(wave)
            .unwrap()
            .into_iter()
            .filter(|f| match kind {
                ActionKind::Release => f.state == State::Held,
                _ => !matches!(step(kind, f, false), ActionStep::Refuse(_)),
            })
            .collect()
    };
    let requests: Vec<ActionRequest> = match act {
        Act::Mailbox {
            kind,
            pick,
            force,
            to,
        } => {
            let force = *force && matches!(kind, ActionKind::Retry | ActionKind::Reschedule);
            let target = (*kind == ActionKind::Reschedule).then(|| wave_of(*to));
            // The command refuses a target whose window has opened, or one it would overfill.
            if let Some(t) = target
                && now >= t.window_start
            {
                return;
            }
            let can: Vec<&MailboxFacts> = everyone
                .iter()
                .filter(|f| !matches!(step(*kind, f, force), ActionStep::Refuse(_)))
                .filter(|f| {
                    target.is_none_or(|t| force || t.name == f.wave || t.mailboxes < t.capacity)
                })
                .collect();
            let Some(f) = (!can.is_empty()).then(|| can[pick % can.len()]) else {
                return;
            };
            if matches!(kind, ActionKind::Approve | ActionKind::Retry)
                && window_end
                    .get(f.wave.as_str())
                    .is_some_and(|end| now >= *end)
            {
                tally.late += 1;
            }
            vec![request(f, *kind, force, target.map(|t| t.id))]
        }
        Act::WaveHold(w) => eligible(&wave_of(*w).name, ActionKind::Hold)
            .iter()
            .map(|f| request(f, ActionKind::Hold, false, None))
            .collect(),
        Act::WaveRelease(w) => eligible(&wave_of(*w).name, ActionKind::Release)
            .iter()
            .map(|f| request(f, ActionKind::Release, false, None))
            .collect(),
        Act::WaveReschedule { wave, days } => {
            let from = wave_of(*wave);
            let day: jiff::civil::Date = from.name.trim_start_matches("mw-").parse().unwrap();
            let Some(slot) = calendar
                .slot(day.checked_add(jiff::Span::new().days(*days)).unwrap())
                .unwrap()
            else {
                return;
            };
            if now >= slot.start.timestamp() {
                return;
            }
            let facts = eligible(&from.name, ActionKind::Reschedule);
            if facts.is_empty() {
                return;
            }
            drop(store);
            let to = Store::open(db).unwrap().ensure_wave(&slot).unwrap();
            facts
                .iter()
                .map(|f| request(f, ActionKind::Reschedule, true, Some(to.id)))
                .collect()
        }
    };
    tally.recorded += record(db, &requests, now);
}

/// When an action is asked: minutes from the end of one of the plan's windows (most of what can go
/// wrong happens around a close).
type At = (usize, i64);

/// One run of a 40-mailbox plan with `acts` asked at their moments; panics when a move cut over
/// outside a window of the wave it belonged to.
fn one_run(acts: &[(At, Act)], seed: u64) -> Tally {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        // Approvals are left to the operator, and windows are short, so that mailboxes wait
        // in closed windows for the actions that could let them complete late.
        let config = engine_config(8, 8, "cutover_poll = \"10m\"\naction_poll = \"1h\"")
            .replace("dcs_approval = \"investigate\"", "dcs_approval = \"never\"")
            .replace("cutover_window = \"20:00-06:00\"", "cutover_window = \"20:00-23:00\"");
        let p = Project::new(&config);
        let plan = planned_estate(&p, 40, date(2027, 3, 1));
        let db = p.db();
        let calendar = Calendar::from_schedule(&p.config().schedule).unwrap();
        let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
        let clock = Clock::tokio(origin, 1.0);
        let profile = Profile {
            max_concurrent_migrations: 20,
            throughput_gb_per_hour: 400.0,
            max_concurrent_completions: 2,
            finalization_minutes: 25.0,
            stall_share: 0.1,
            transient_failure_share: 0.1,
            permanent_failure_share: 0.08,
            dcs_investigate_share: 0.2,
            dcs_poor_share: 0.0,
            replication_lag_seconds: 30.0,
            injected_5xx_share: 0.01,
            ..Profile::default()
        };
        let sim = Arc::new(Simulator::new(profile, seed, clock).unwrap());
        let run = spawn_run(&p, clock, &sim);
        let mut tally = Tally::default();
        let at = |(wave, minutes): At| {
            plan.waves[wave % plan.waves.len()].window_end_utc + SignedDuration::from_mins(minutes)
        };
        let mut acts: Vec<(Timestamp, Act)> =
            acts.iter().map(|(when, act)| (at(*when), act.clone())).collect();
        acts.sort_by_key(|(when, _)| *when);
        for (when, act) in &acts {
            let when = *when;
            let wait = when.duration_since(clock.now());
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
            if run.is_finished() {
                break;
            }
            ask(&db, &calendar, act, clock.now(), &mut tally);
        }
        // Every mailbox ends cut over, or with the operator; the run ends by itself.
        let summary = tokio::time::timeout(std::time::Duration::from_secs(90 * 86_400), run)
            .await
            .expect("the run ended within 90 simulated days")
            .unwrap();
        assert_eq!(summary.outcome, "finished", "{summary:#?}");

        let store = Store::open_read_only(&db).unwrap();
        let windows: HashMap<String, (Timestamp, Timestamp)> = store
            .conn()
            .prepare("SELECT name, window_start, window_end FROM waves")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        Timestamp::from_millisecond(r.get(1)?).unwrap(),
                        Timestamp::from_millisecond(r.get(2)?).unwrap(),
                    ),
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let cut: Vec<(String, String, Timestamp)> = sim.with_moves(|m| {
            m.moves()
                .iter()
                .filter_map(|mv| {
                    mv.completion_started().map(|t| {
                        (m.identity_of(mv).to_string(), m.batch_of(mv).to_string(), t)
                    })
                })
                .collect()
        });
        for (who, batch, started) in &cut {
            let (start, end) = windows
                .get(batch)
                .unwrap_or_else(|| panic!("{who} cut over in batch {batch}, which is no wave"));
            assert!(
                started >= start && started < end,
                "{who} cut over at {started}, outside {batch}'s window {start}..{end}; actions {acts:#?}"
            );
            let f = store.mailbox_facts(who).unwrap().unwrap();
            assert_eq!(
                &f.wave, batch,
                "{who} cut over in {batch} but belongs to {}",
                f.wave
            );
        }
        tally.cut_over = cut.len() as u64;
        let mut q = store
            .conn()
            .prepare("SELECT outcome FROM actions WHERE outcome IS NOT NULL")
            .unwrap();
        for outcome in q.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            let outcome = outcome.unwrap();
            if outcome.starts_with("applied; it cuts over in") {
                tally.moved_on += 1;
            }
            if outcome.contains("no window is left") {
                tally.no_window += 1;
            }
        }
        tally
    })
}

#[test]
fn nothing_cuts_over_outside_a_window_whatever_the_operator_does() {
    let total = Mutex::new(Tally::default());
    let mut runner = TestRunner::new(Config {
        cases: 32,
        max_shrink_iters: 24,
        failure_persistence: None,
        ..Config::default()
    });
    // Actions from four hours before a window closes to two days after.
    let acts = proptest::collection::vec(((0..10usize, -240..2880i64), act()), 10..40);
    runner
        .run(&(acts, any::<u64>()), |(acts, seed)| {
            let t = one_run(&acts, seed);
            let mut total = total.lock().unwrap();
            total.recorded += t.recorded;
            total.moved_on += t.moved_on;
            total.no_window += t.no_window;
            total.late += t.late;
            total.cut_over += t.cut_over;
            Ok(())
        })
        .unwrap();
    let total = total.into_inner().unwrap();
    eprintln!("over every case: {total:?}");
    // The cases did what the promise is about: actions after a window closed that could have
    // let a mailbox complete, moved to a later window by the rule.
    assert!(total.recorded > 300, "{total:?}");
    assert!(total.late > 0, "{total:?}");
    assert!(total.moved_on >= 5, "{total:?}");
    assert!(total.cut_over > 500, "{total:?}");
}
