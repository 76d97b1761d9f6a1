//! A process killed with SIGKILL at any moment leaves a database that opens, passes
//! `PRAGMA integrity_check`, and holds every transition that was acknowledged to the caller.
//!
//! The child is this test binary run again with `MAILWAVE_CHURN_DB` set: it walks mailboxes through
//! the lifecycle from wherever the database says they are, several threads at once, and prints one line
//! per acknowledged transition. The parent kills it after a random number of acknowledgements (by
//! progress, not by time), checks the database, and starts it again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};

use jiff::civil::date;
use mailwave::store::writer::{self, Command, Transition};
use mailwave::store::{State, Store};
use rand::{RngExt, SeedableRng};

use crate::helpers::*;

const MAILBOXES: i64 = 3_000;
const THREADS: i64 = 4;

fn next(state: State) -> Option<State> {
    match state {
        State::Planned => Some(State::Submitted),
        State::Submitted => Some(State::Syncing),
        State::Syncing => Some(State::Synced),
        State::Synced => Some(State::Completing),
        State::Completing => Some(State::Completed),
        _ => None,
    }
}

/// The child's work: a helper process, not a test. Ignored, so it neither runs nor passes on its own;
/// the test below starts it with `--ignored --exact`.
#[test]
#[ignore = "helper process of crash::sigkill_at_random_moments_loses_no_acknowledged_transition"]
fn churn_child() {
    let db = std::env::var("MAILWAVE_CHURN_DB").expect(
        "churn_child is started by sigkill_at_random_moments_loses_no_acknowledged_transition",
    );
    let db = std::path::PathBuf::from(db);
    let store = Store::open_read_only(&db).unwrap();
    let mut states: HashMap<i64, State> = HashMap::new();
    let mut q = store
        .conn()
        .prepare("SELECT mailbox_id, state FROM mailbox_state")
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (id, code) = row.unwrap();
        states.insert(id, State::from_code(code).unwrap());
    }
    let (handle, _thread) = writer::spawn(&db, None).unwrap();
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let handle = handle.clone();
            let states = &states;
            let out = &out;
            s.spawn(move || {
                let mut mine: Vec<i64> = states
                    .keys()
                    .copied()
                    .filter(|id| id % THREADS == t)
                    .collect();
                mine.sort_unstable();
                for id in mine {
                    let mut state = states[&id];
                    while let Some(to) = next(state) {
                        handle
                            .apply_blocking(Command::Transition(Transition::new(
                                id, to, "churn", id,
                            )))
                            .unwrap();
                        let mut o = out.lock().unwrap();
                        writeln!(o, "ack {id} {}", to.code()).unwrap();
                        o.flush().unwrap();
                        state = to;
                    }
                }
            });
        }
    });
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_transition() {
    let p = Project::new(&SMALL_CONFIG.replace("weekday_capacity = 3", "weekday_capacity = 5000"));
    let plan = planned_estate(&p, MAILBOXES as usize, date(2027, 1, 4));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261121);
    let mut acked: HashMap<i64, u8> = HashMap::new();
    let total_steps = plan.mailboxes as usize * 5;
    let mut kills = 0;
    for round in 0..40 {
        let remaining = total_steps - acked.values().map(|&c| c as usize).sum::<usize>();
        if remaining == 0 {
            break;
        }
        let kill_after = rng.random_range(1..=(remaining / 6).max(2));
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash::churn_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MAILWAVE_CHURN_DB", p.db())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = 0;
        let reader = BufReader::new(child.stdout.take().unwrap());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let id: i64 = parts.next().unwrap().parse().unwrap();
            let code: u8 = parts.next().unwrap().parse().unwrap();
            let e = acked.entry(id).or_default();
            *e = (*e).max(code);
            seen += 1;
            if seen == kill_after {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
        }
        child.wait().unwrap();

        let store = Store::open(&p.db()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
        let mut q = store
            .conn()
            .prepare("SELECT mailbox_id, state FROM mailbox_state")
            .unwrap();
        let states: HashMap<i64, i64> = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (id, &code) in &acked {
            assert!(
                states[id] >= code as i64,
                "round {round}: mailbox {id} acknowledged at state {code}, found {}",
                states[id]
            );
        }
    }
    assert!(kills >= 5, "the child was killed {kills} times");

    // Every mailbox's events form one unbroken chain with no transition twice.
    let store = Store::open_read_only(&p.db()).unwrap();
    let mut q = store
        .conn()
        .prepare("SELECT mailbox_id, from_state, to_state FROM events ORDER BY id")
        .unwrap();
    let mut last: HashMap<i64, i64> = HashMap::new();
    for row in q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap()
    {
        let (id, from, to) = row.unwrap();
        assert_eq!(
            from,
            last.get(&id).copied(),
            "mailbox {id}: event from {from:?} after {:?}",
            last.get(&id)
        );
        last.insert(id, to);
    }
    assert_eq!(last.len() as u64, plan.mailboxes);
}
