//! The state store at NHSmail scale. Run: `cargo bench --bench store`.
//! Targets: at least 100,000 transitions a second through the writer (each with its event row);
//! `status` over 2.1 million mailboxes in under 200 ms; the database after a full simulated migration
//! (about 8 events a mailbox) under 2 GB. (Plan loading is measured by the planner bench.)

mod common;

use std::time::Instant;

use common::*;
use mailwave::config::Schedule;
use mailwave::store::writer::{self, Command, Transition};
use mailwave::store::{State, Store};

fn main() {
    let n = estate_size();
    let work = tempfile::tempdir().expect("temp dir");
    let db = work.path().join("state/mailwave.db");
    estate_with_plan(work.path(), n, &Schedule::default());
    let ids: Vec<i64> = {
        let store = Store::open_read_only(&db).unwrap();
        let mut q = store
            .conn()
            .prepare("SELECT mailbox_id FROM mailbox_state ORDER BY wave_id, seq")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    println!("estate: {} planned mailboxes", ids.len());

    // A full migration: seven transitions a mailbox (one resync) on top of the plan event.
    let path = [
        State::Submitted,
        State::Syncing,
        State::Synced,
        State::Syncing,
        State::Synced,
        State::Completing,
        State::Completed,
    ];
    let (handle, thread) = writer::spawn(&db, Some(1)).unwrap();
    let start = Instant::now();
    let mut transitions = 0u64;
    std::thread::scope(|s| {
        for part in ids.chunks(ids.len().div_ceil(2)) {
            let handle = handle.clone();
            s.spawn(move || {
                for (step, to) in path.iter().enumerate() {
                    for &id in part {
                        let t = Transition::new(id, *to, "bench", 1_800_000_000_000 + step as i64)
                            .correlation([step as u8; 16]);
                        handle.submit_blocking(Command::Transition(t)).unwrap();
                    }
                }
            });
        }
    });
    handle.flush_blocking().unwrap();
    transitions += (ids.len() * path.len()) as u64;
    let took = start.elapsed();
    drop(handle);
    thread.join().unwrap().unwrap();
    let rate = transitions as f64 / took.as_secs_f64();
    println!(
        "writer: {transitions} transitions in {:.1} s: {:.0} a second",
        took.as_secs_f64(),
        rate
    );

    let store = Store::open(&db).unwrap();
    store
        .conn()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(store);
    let size = std::fs::metadata(&db).unwrap().len();
    let events: i64 = Store::open_read_only(&db)
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    println!(
        "database: {:.0} MiB for {} mailboxes and {events} events ({:.1} a mailbox)",
        mib(size),
        ids.len(),
        events as f64 / ids.len() as f64
    );

    let reader = Store::open_read_only(&db).unwrap();
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let status = reader.status(jiff::Timestamp::now(), None).unwrap();
        times.push(t.elapsed());
        assert_eq!(status.mailboxes as usize, ids.len());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "status: median {:.0} ms over 7 runs (fastest {:.0} ms)",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    println!(
        "RESULT store: {:.0} transitions/s, status {:.0} ms, database {:.0} MiB ({} events)",
        rate,
        median.as_secs_f64() * 1e3,
        mib(size),
        events
    );
}
