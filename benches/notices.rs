//! The notices of an NHSmail weekend wave: `cargo bench --bench notices`
//! (MAILWAVE_BENCH_MAILBOXES to change the size, 83,000 by default). Every user of one wave is
//! owed the notice a day before its window; nine senders (the fewest whose 10,000 a day carry
//! 83,000) send them through the simulator's Graph on tokio's paused clock, so the figure is
//! mailwave's own cost and the simulated time the limits impose.

mod common;

use std::sync::Arc;

use common::*;
use mailwave::directory::graph::GraphClient;
use mailwave::engine::notices::Notifier;
use mailwave::engine::notices::template::{KINDS, STARTERS, Templates};
use mailwave::sim::directory::sender_address;
use mailwave::sim::transport::LocalGraph;
use mailwave::sim::{Profile, Simulator};
use mailwave::store::Store;
use mailwave::time::Clock;

fn main() {
    let n: usize = std::env::var("MAILWAVE_BENCH_MAILBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(83_000);
    let senders = n.div_ceil(10_000) as u32;
    let list: Vec<String> = (1..=senders)
        .map(|i| format!("\"{}\"", sender_address(i)))
        .collect();
    let (work, _, config) = bench_project(&format!(
        "weekday_capacity = {n}\nweekend_capacity = {n}\n\
         [notices]\nenabled = true\nsenders = [{}]\nbefore = [\"1d\"]\nafter = false\n",
        list.join(", ")
    ));
    std::fs::create_dir_all(work.path().join("schedules/notices")).unwrap();
    for (name, text) in STARTERS {
        std::fs::write(work.path().join("schedules/notices").join(name), text).unwrap();
    }
    let plan = timed("setup: generate, import and plan", || {
        estate_with_plan(work.path(), n, &config.schedule)
    })
    .0;
    let wave = plan
        .waves
        .iter()
        .find(|w| w.mailboxes as usize * 2 > n)
        .expect("one wave holds most of the estate");
    let owed = wave.mailboxes;
    let db = work.path().join("state/mailwave.db");
    let origin = wave.window_start_utc - jiff::SignedDuration::from_hours(24);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let rss_before = peak_rss();
    let ((summary, sim, took_sim), wall) = timed("send the notices (paused clock)", || {
        runtime.block_on(async {
            let clock = Clock::tokio(origin, 1.0);
            let sim = Arc::new(Simulator::new(Profile::default(), 1, clock).unwrap());
            let (writer, thread) = mailwave::store::writer::spawn(&db, None).unwrap();
            let notifier = Notifier {
                store_path: db.clone(),
                config: config.notices.clone(),
                timezone: config.schedule.timezone.clone(),
                templates: Some(Templates::load(&config.notices.templates, &KINDS[..1]).unwrap()),
                report_to: Vec::new(),
                report: None,
                mailer: Arc::new(GraphClient::new(LocalGraph::new(sim.clone()))),
                clock,
                stop_grace: jiff::SignedDuration::from_secs(10),
                alerts: None,
                actions_applied: Arc::new(tokio::sync::Notify::new()),
                writer: writer.for_paused_time(),
            };
            let done = tokio_util::sync::CancellationToken::new();
            done.cancel();
            let summary = notifier
                .run(tokio_util::sync::CancellationToken::new(), done)
                .await
                .unwrap();
            thread.join().unwrap().unwrap();
            (summary, sim, clock.now().duration_since(origin))
        })
    });
    let sent = sim.with_directory(|d| d.sent.clone());
    // The busiest minute of the whole pool, and of one sender.
    let mut times: Vec<jiff::Timestamp> = sent.iter().map(|m| m.at).collect();
    times.sort();
    let mut busiest = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while times[i].duration_since(times[j]) >= jiff::SignedDuration::from_mins(1) {
            j += 1;
        }
        busiest = busiest.max(i + 1 - j);
    }
    let throttled = sim.with_directory(|d| d.stats.throttled);
    let store = Store::open_read_only(&db).unwrap();
    let books: u64 = store
        .notice_counts()
        .unwrap()
        .iter()
        .filter(|c| c.status == "sent")
        .map(|c| c.count)
        .sum();
    assert_eq!(books as usize, sent.len());
    assert_eq!(summary.sent, owed, "{summary:?}");
    println!(
        "RESULT notices: {owed} owed, {} sent by {senders} senders in {:.2} simulated hours \
         (the limit: {} a minute, {:.2} h); busiest minute {busiest} ({:.0}% of the pool's {}); \
         429s {throttled}; wall {:.1} s ({:.0} notices/s); peak memory {:.0} MiB (before: {:.0})",
        sent.len(),
        took_sim.as_secs_f64() / 3600.0,
        senders * 30,
        owed as f64 / (senders as f64 * 30.0) / 60.0,
        100.0 * busiest as f64 / (senders as f64 * 30.0),
        senders * 30,
        wall.as_secs_f64(),
        sent.len() as f64 / wall.as_secs_f64(),
        mib(peak_rss()),
        mib(rss_before)
    );
}
