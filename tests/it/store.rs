//! The state store through its library API: the writer, the lifecycle, plan loading and status.

use jiff::civil::date;
use mailwave::plan::{self, Calendar, files};
use mailwave::store::writer::{self, Command, Reply, Transition};
use mailwave::store::{State, Store, StoreError};

use crate::helpers::*;

fn config(weekday: u32, weekend: u32) -> String {
    SMALL_CONFIG
        .replace(
            "weekday_capacity = 3",
            &format!("weekday_capacity = {weekday}"),
        )
        .replace(
            "weekend_capacity = 5",
            &format!("weekend_capacity = {weekend}"),
        )
}

fn ids_in_wave(store: &Store, wave: &str) -> Vec<i64> {
    let mut q = store
        .conn()
        .prepare("SELECT s.mailbox_id FROM mailbox_state s JOIN waves w ON w.id = s.wave_id WHERE w.name = ?1 ORDER BY s.seq")
        .unwrap();
    q.query_map([wave], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn state(store: &Store, id: i64) -> State {
    let code: i64 = store
        .conn()
        .query_row(
            "SELECT state FROM mailbox_state WHERE mailbox_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    State::from_code(code).unwrap()
}

#[test]
fn writer_acknowledges_only_what_is_committed_with_its_event() {
    let p = Project::new(&config(50, 100));
    let plan = planned_estate(&p, 300, date(2027, 1, 4));
    let reader = Store::open_read_only(&p.db()).unwrap();
    let first = ids_in_wave(&reader, &plan.waves[0].id)[0];

    let (handle, thread) = writer::spawn(&p.db(), None).unwrap();
    let t = Transition::new(first, State::Submitted, "submit", 1_000)
        .correlation([7u8; 16])
        .request_id("req-1");
    assert_eq!(
        handle.apply_blocking(Command::Transition(t)).unwrap(),
        Reply::Done
    );
    // Visible to an independent reader the moment it is acknowledged.
    assert_eq!(state(&reader, first), State::Submitted);
    let (from, to, cause, corr): (i64, i64, String, Vec<u8>) = reader
        .conn()
        .query_row(
            "SELECT from_state, to_state, cause, correlation FROM events WHERE mailbox_id = ?1 ORDER BY id DESC LIMIT 1",
            [first],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (from, to, cause.as_str(), corr),
        (0, 1, "submit", vec![7u8; 16])
    );

    // Illegal: submitted -> completed is fine, but completed -> syncing is not; nor planned -> synced.
    let second = ids_in_wave(&reader, &plan.waves[0].id)[1];
    let err = handle
        .apply_blocking(Command::Transition(Transition::new(
            second,
            State::Synced,
            "poll",
            2_000,
        )))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IllegalTransition { from: ref f, to: State::Synced, .. } if f == "planned"),
        "{err}"
    );
    assert_eq!(
        state(&reader, second),
        State::Planned,
        "nothing written for a refused transition"
    );
    let events: i64 = reader
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE mailbox_id = ?1",
            [second],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1, "only the plan event");

    // Intents and their outcomes.
    let Reply::Intent(intent) = handle
        .apply_blocking(Command::Intent {
            mailbox: second,
            operation: "create",
            correlation: [9u8; 16],
            at: 3_000,
        })
        .unwrap()
    else {
        panic!("expected an intent id")
    };
    let open: i64 = reader
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 1);
    handle
        .apply_blocking(Command::Resolve {
            intent,
            outcome: "created".into(),
            at: 3_100,
        })
        .unwrap();
    let open: i64 = reader
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0);
    drop(handle);
    thread.join().unwrap().unwrap();
}

#[test]
fn many_unacknowledged_commands_all_land_in_order() {
    let p = Project::new(&config(500, 1000));
    planned_estate(&p, 2_000, date(2027, 1, 4));
    let ids: Vec<i64> = {
        let store = Store::open_read_only(&p.db()).unwrap();
        let mut q = store
            .conn()
            .prepare("SELECT mailbox_id FROM mailbox_state")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        ids.len() > 1_950,
        "a few synthetic mailboxes are excluded, not more"
    );
    let (handle, thread) = writer::spawn(&p.db(), Some(1)).unwrap();
    let path = [
        State::Submitted,
        State::Syncing,
        State::Synced,
        State::Completing,
        State::Completed,
    ];
    for (step, to) in path.iter().enumerate() {
        for &id in &ids {
            handle
                .submit_blocking(Command::Transition(Transition::new(
                    id,
                    *to,
                    "test",
                    step as i64,
                )))
                .unwrap();
        }
    }
    handle.flush_blocking().unwrap();
    drop(handle);
    thread.join().unwrap().unwrap();
    let store = Store::open_read_only(&p.db()).unwrap();
    let completed: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM mailbox_state WHERE state = 5",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(completed as usize, ids.len());
    let events: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        events as usize,
        ids.len() * 6,
        "one plan event and five transitions each"
    );
}

#[test]
fn revised_plan_moves_only_mailboxes_that_have_not_started() {
    let p = Project::new(&config(50, 100));
    let plan_a = planned_estate(&p, 300, date(2027, 1, 4));
    let mut store = Store::open(&p.db()).unwrap();
    // The first bulk wave (the first wave is the pilot's).
    let bulk = &plan_a.waves[1];
    assert!(!bulk.pilot);
    let wave1 = ids_in_wave(&store, &bulk.id);
    let started = &wave1[..5];
    let (handle, thread) = writer::spawn(&p.db(), None).unwrap();
    for &id in started {
        handle
            .apply_blocking(Command::Transition(Transition::new(
                id,
                State::Submitted,
                "submit",
                10,
            )))
            .unwrap();
    }
    drop(handle);
    thread.join().unwrap().unwrap();

    // The same plan again: nothing changes.
    let report = store
        .load_plan(
            &files::read(&p.path("schedules/test")).unwrap(),
            jiff::Timestamp::now(),
        )
        .unwrap();
    assert!(report.unchanged);

    // A revised plan starting a week later puts every mailbox in another wave.
    let (inv, _) = store.load_inventory().unwrap();
    let calendar = Calendar::from_schedule(&p.config().schedule).unwrap();
    let plan_b = plan::build(&inv, &calendar, date(2027, 1, 11), "later").unwrap();
    let dir = p.path("schedules/later");
    files::write(&plan_b, &dir).unwrap();
    let report = store
        .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
        .unwrap();
    assert!(!report.unchanged);
    assert_eq!(report.in_flight.len(), 5, "{:?}", report.in_flight);
    assert!(
        report
            .in_flight
            .iter()
            .all(|(_, s, w)| *s == State::Submitted && *w == bulk.id)
    );
    let planned = plan_a.mailboxes - 5;
    assert_eq!(report.moved, planned);
    for &id in started {
        assert_eq!(state(&store, id), State::Submitted);
        assert!(ids_in_wave(&store, &bulk.id).contains(&id));
    }
    assert!(!ids_in_wave(&store, &bulk.id).contains(&wave1[10]));
    let replans: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE cause = 'replan'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(replans as u64, planned);
    // Loading it twice is idempotent too.
    assert!(
        store
            .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
            .unwrap()
            .unchanged
    );
}

#[test]
fn a_plan_row_outside_the_inventory_is_refused_with_file_and_line() {
    let p = Project::new(&config(50, 100));
    let plan = planned_estate(&p, 100, date(2027, 1, 4));
    let dir = p.path("schedules/test");
    let batch = dir.join(&plan.waves[1].batches[0]);
    let mut text = std::fs::read_to_string(&batch).unwrap();
    text.push_str("stranger@nowhere.example\n");
    std::fs::write(&batch, text).unwrap();
    let lines = std::fs::read_to_string(&batch).unwrap().lines().count();
    let mut store = Store::open(&p.db()).unwrap();
    let before: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let err = store
        .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{}, line {lines}: stranger@nowhere.example is not in the inventory",
            plan.waves[1].batches[0]
        )),
        "{err}"
    );
    let after: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn status_counts_waves_states_and_failures() {
    let p = Project::new(&config(50, 100));
    let plan = planned_estate(&p, 300, date(2027, 1, 4));
    let store = Store::open_read_only(&p.db()).unwrap();
    let wave1 = ids_in_wave(&store, &plan.waves[0].id);
    let (handle, thread) = writer::spawn(&p.db(), None).unwrap();
    let go = |id, to, at| {
        handle
            .apply_blocking(Command::Transition(Transition::new(id, to, "t", at)))
            .unwrap();
    };
    go(wave1[0], State::Submitted, 1_000);
    go(wave1[1], State::Submitted, 2_000);
    go(wave1[1], State::Syncing, 3_000);
    go(wave1[2], State::Submitted, 500);
    go(wave1[2], State::Failed, 600);
    drop(handle);
    thread.join().unwrap().unwrap();
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let s = store.status(now, None).unwrap();
    assert_eq!(s.mailboxes, plan.mailboxes);
    assert_eq!(s.totals["submitted"], 1);
    assert_eq!(s.totals["syncing"], 1);
    assert_eq!(
        s.failures["permanent"], 1,
        "a failure without a class counts as permanent"
    );
    let w = &s.waves[0];
    assert_eq!(w.id, plan.waves[0].id);
    let oldest = w.oldest_unsynced.as_ref().unwrap();
    assert_eq!(oldest.state, State::Submitted);
    assert_eq!(oldest.since, "1970-01-01T00:00:01Z");
    assert_eq!(s.next_wave.as_ref().unwrap().id, plan.waves[0].id);
}

/// Found by running the release binary in real time beside `mailwave status`: a plain file
/// descriptor opened and closed on the database in the run's process dropped the writer's SQLite
/// locks (POSIX locks belong to the process), and the next reader process to close its connection
/// took itself for the last one and deleted the WAL under the running writer. Every later commit
/// went to an unlinked file and was lost.
#[test]
fn readers_in_other_processes_never_take_the_wal_from_a_running_writer() {
    let p = Project::new(&config(50, 100));
    let plan = planned_estate(&p, 40, date(2027, 1, 4));
    let ids = ids_in_wave(&Store::open_read_only(&p.db()).unwrap(), &plan.waves[0].id);
    let (handle, thread) = writer::spawn(&p.db(), None).unwrap();
    let submit = |id: i64| {
        let t = Transition::new(id, State::Submitted, "submit", 1_000);
        handle.apply_blocking(Command::Transition(t)).unwrap();
    };
    submit(ids[0]);
    // What the run does beside its writer: open and close another connection in the same process.
    drop(Store::open_read_only(&p.db()).unwrap());
    drop(Store::open(&p.db()).unwrap());
    // What an operator does beside a run: read the state from other processes, read-only (status),
    // read-write (mailwave's own connection), and with the system's sqlite3 (ad-hoc SQL, backups),
    // whose close deletes the WAL when it believes it is the last connection.
    let out = p.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "store::reader_child",
            "--test-threads=1",
        ])
        .env("MAILWAVE_READER_DB", p.db())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", stderr(&child));
    // The reader really ran: a filter that matched nothing would pass as well.
    assert!(
        stdout(&child).contains("1 passed"),
        "the reader did not run: {}",
        stdout(&child)
    );
    match std::process::Command::new("sqlite3")
        .arg(p.db())
        .arg("SELECT COUNT(*) FROM mailbox_state")
        .output()
    {
        Ok(out) => assert!(out.status.success(), "{}", stderr(&out)),
        Err(_) => {
            eprintln!("note: no sqlite3 on this machine; the ad-hoc SQL reader was not tried")
        }
    }
    submit(ids[1]);
    assert!(
        p.path("state/mailwave.db-wal").exists(),
        "the WAL of a running writer is still there"
    );
    let fresh = Store::open_read_only(&p.db()).unwrap();
    assert_eq!(
        state(&fresh, ids[1]),
        State::Submitted,
        "a commit made after the readers left is in the database"
    );
    drop(handle);
    thread.join().unwrap().unwrap();
    let after = Store::open_read_only(&p.db()).unwrap();
    assert_eq!(state(&after, ids[0]), State::Submitted);
    assert_eq!(state(&after, ids[1]), State::Submitted);
}

/// The other process of the test above: opens a read-write connection, reads, and closes it. A helper
/// process, not a test: ignored, so it neither runs nor passes on its own; the test above starts it
/// with `--ignored --exact`.
#[test]
#[ignore = "helper process of store::readers_in_other_processes_never_take_the_wal_from_a_running_writer"]
fn reader_child() {
    let db = std::env::var("MAILWAVE_READER_DB").expect(
        "reader_child is started by readers_in_other_processes_never_take_the_wal_from_a_running_writer",
    );
    let store = Store::open(std::path::Path::new(&db)).unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM mailbox_state", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0);
}

/// A database written by the first release (schema 1), taken from a demo killed with SIGKILL in
/// the middle of its creates: 40 mailboxes planned, 39 submitted, 15 create intents without an
/// outcome, a run row never ended. This version opens it, migrates it, and finishes the job
/// without a duplicate request.
#[tokio::test(start_paused = true)]
async fn a_schema_1_database_left_by_a_killed_run_is_migrated_and_finished() {
    use mailwave::sim::transport::LocalTransport;
    use mailwave::sim::{Profile, Simulator};
    use std::sync::Arc;

    let p = Project::new(&crate::engine::engine_config(100, 100, ""));
    std::fs::create_dir_all(p.path("state")).unwrap();
    {
        let conn = rusqlite::Connection::open(p.db()).unwrap();
        conn.execute_batch(include_str!("../fixtures/state-v1.sql"))
            .unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
    let store = Store::open(&p.db()).unwrap();
    let v: i64 = store
        .conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, mailwave::store::SCHEMA_VERSION);
    let open = store.open_intents().unwrap();
    assert_eq!(open.len(), 15);
    assert!(
        open.iter().all(|i| i.wave_id.is_none()),
        "schema 1 kept no wave"
    );
    let waves = store.waves().unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM mailbox_state", [], |r| r.get(0))
        .unwrap();
    drop(store);

    // The run that picks it up: the simulator knows nothing of the old run's requests.
    let clock = mailwave::time::Clock::tokio(waves[0].prestage_start, 1.0);
    let sim = Arc::new(Simulator::new(Profile::default().without_failures(), 3, clock).unwrap());
    let service = Arc::new(mailwave::exchange::ExchangeClient::new(
        LocalTransport::new(sim.clone()),
        clock,
    ));
    let summary = crate::engine::run_session(&p, clock, service, Default::default()).await;
    assert_eq!(summary.outcome, "finished", "{summary:#?}");
    assert_eq!(summary.uncertain_at_start, 15);
    assert_eq!(
        summary.states["completed"] + summary.states["completed_with_warning"],
        n as u64
    );
    let creates: Vec<u32> = sim.with_moves(|m| m.moves().iter().map(|mv| mv.creates).collect());
    assert_eq!(creates.len() as i64, n, "one request per mailbox");
    assert!(creates.iter().all(|&c| c == 1));
    let store = Store::open_read_only(&p.db()).unwrap();
    let (open, unended): (i64, i64) = store
        .conn()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM intents WHERE resolved_at IS NULL),
                    (SELECT COUNT(*) FROM runs WHERE ended_at IS NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((open, unended), (0, 0));
    let interrupted: String = store
        .conn()
        .query_row("SELECT outcome FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        interrupted, "interrupted",
        "the killed run's record is closed"
    );
}
