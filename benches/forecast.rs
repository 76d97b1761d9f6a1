//! The forecast of a full NHSmail-scale plan: `cargo bench --bench forecast`
//! (MAILWAVE_BENCH_MAILBOXES to change the size). Target: under 60 seconds on 2 cores, from reading
//! the state database to the printed forecast, as `mailwave forecast` does it.

mod common;

use common::*;
use mailwave::forecast::{self, WhatIf};
use mailwave::sim::Profile;
use mailwave::store::Store;

fn main() {
    let n = estate_size();
    let (work, _, config) =
        bench_project("[run]\nrequests_per_second = 20\nmax_in_flight = 1000000\n");
    timed(
        "setup: generate, import and plan (not the forecast)",
        || estate_with_plan(work.path(), n, &config.schedule),
    );
    let db = work.path().join("state/mailwave.db");
    // A service sized for NHSmail's days (83,000 cut-overs on a weekend day).
    let service = Profile {
        max_concurrent_migrations: 4_000,
        throughput_gb_per_hour: 4_000.0 * 3.0,
        max_concurrent_completions: 1_200,
        ..Profile::default()
    };
    let store = Store::open_read_only(&db).unwrap();
    let from = store.waves().unwrap()[0].prestage_start - jiff::SignedDuration::from_hours(1);
    let rss_before = peak_rss();
    let started = std::time::Instant::now();
    let (prepared, read) = timed("read the state database", || {
        forecast::prepare(&store, &config, from, from, &service).unwrap()
    });
    let (f, replayed) = timed("replay the plan", || {
        forecast::forecast(&prepared, &config, &WhatIf::default(), 1).unwrap()
    });
    let total = started.elapsed();
    let (what_if, with_what_if) = timed("replay it again with a what-if beside it", || {
        forecast::forecast(
            &prepared,
            &config,
            &WhatIf {
                concurrency: Some(2_000),
                ..WhatIf::default()
            },
            1,
        )
        .unwrap()
    });
    let text = forecast::text(&what_if, &config.schedule.timezone);
    println!("{}", text.lines().take(8).collect::<Vec<_>>().join("\n"));
    println!(
        "...\n{}",
        text.lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "RESULT forecast: {n} mailboxes, {} waves, {:.1} s (read {:.1} s, replay {:.1} s), with a what-if {:.1} s, {} cut over, {} at risk, peak {:.0} MiB (+{:.0})",
        f.base.waves.len(),
        total.as_secs_f64(),
        read.as_secs_f64(),
        replayed.as_secs_f64(),
        with_what_if.as_secs_f64(),
        f.base.cut_over,
        f.base.at_risk,
        mib(peak_rss()),
        mib(peak_rss().saturating_sub(rss_before))
    );
    assert!(total.as_secs_f64() < 60.0, "the forecast took {total:?}");
}
