//! The run engine at NHSmail scale, end to end on tokio's paused clock against the in-process
//! simulator. Run: `cargo bench --bench engine` (MAILWAVE_BENCH_MAILBOXES to change the size).
//! Targets: the whole estate in under 10 minutes of wall time; at most 4 API calls a migrated mailbox;
//! at least 95% of the simulator's cut-over capacity used in each window (or every mailbox of the
//! wave cut over, when the wave is smaller than the capacity); under 1% of calls answered 429 with
//! the rate limit set to the simulator's budget; under 1 GB of memory.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use jiff::{SignedDuration, Timestamp};
use mailwave::config::Config;
use mailwave::engine::session::{self, Session};
use mailwave::engine::{RunOptions, Snapshot};
use mailwave::exchange::ExchangeClient;
use mailwave::plan::Plan;
use mailwave::sim::transport::LocalTransport;
use mailwave::sim::{Profile, Simulator};
use mailwave::time::Clock;
use tokio_util::sync::CancellationToken;

/// The simulated service's request budget, and mailwave's limit set to it.
const BUDGET: f64 = 20.0;
const BURST: u32 = 40;
/// Finalisation slots and their mean length: the service's cut-over capacity.
const COMPLETIONS: u32 = 1_200;
const FINALIZE_MINUTES: f64 = 8.0;

fn main() {
    let n = estate_size();
    if let Some(dir) = std::env::var_os("MAILWAVE_BENCH_SETUP") {
        setup(std::path::Path::new(&dir), n);
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let config_path = work.path().join("mailwave.toml");
    std::fs::create_dir_all(work.path().join("schedules")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules/uk-bank-holidays.json"),
        work.path().join("schedules/uk-bank-holidays.json"),
    )
    .unwrap();
    std::fs::write(
        &config_path,
        format!(
            "[migration]\nremote_host_name = \"hybrid.contoso.com\"\ntarget_delivery_domain = \"contoso.mail.onmicrosoft.com\"\n\
             [schedule]\nbank_holidays = \"schedules/uk-bank-holidays.json\"\n\
             [run]\nrequests_per_second = {BUDGET}\nburst = {BURST}\nmax_parallel_calls = 64\nmax_in_flight = 1000000\ncutover_poll = \"15m\"\n"
        ),
    )
    .unwrap();
    let config = Config::load(&config_path).unwrap();
    let db = work.path().join("state/mailwave.db");

    // The estate is generated, imported and planned by a child process, so that the memory figure
    // below is the run's alone (the planner's own peak is in the planner benchmark).
    timed("setup: generate, import and plan (not the engine)", || {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("MAILWAVE_BENCH_SETUP", work.path())
            .status()
            .unwrap();
        assert!(status.success(), "setup failed");
    });
    let plan: Plan = serde_json::from_slice(
        &std::fs::read(work.path().join("schedules/bench/plan.json")).unwrap(),
    )
    .unwrap();
    println!(
        "plan: {} mailboxes in {} waves, {} to {}",
        plan.mailboxes,
        plan.waves.len(),
        plan.waves[0].date,
        plan.last_date().unwrap()
    );

    // Ample in everything but the cut-over slots and the request budget, which are measured against.
    let profile = Profile {
        max_concurrent_completions: COMPLETIONS,
        finalization_minutes: FINALIZE_MINUTES,
        exchange_requests_per_second: BUDGET,
        exchange_burst: BURST,
        ..Profile::ample()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
    let rss_before = peak_rss();
    let started = Instant::now();
    let (summary, sim) = runtime.block_on(async {
        let clock = Clock::tokio(origin, 1.0);
        let sim = Arc::new(Simulator::new(profile, 3, clock).unwrap());
        let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
        let (progress_tx, progress_rx) = tokio::sync::watch::channel(Snapshot::default());
        // Progress every 10 s of wall time, from a plain thread (the runtime's clock is paused).
        std::thread::spawn(move || {
            while progress_rx.has_changed().is_ok() {
                std::thread::sleep(std::time::Duration::from_secs(10));
                let s = progress_rx.borrow().clone();
                eprintln!(
                    "  .. {} wave {:?} done {} synced {} in flight {} calls {}",
                    s.now.map(|t| t.to_string()).unwrap_or_default(),
                    s.current_wave,
                    s.counts[5] + s.counts[6],
                    s.counts[3],
                    s.in_flight,
                    s.calls
                );
            }
        });
        let report = session::run(Session {
            service,
            state: &db,
            config: &config,
            clock,
            options: RunOptions::default(),
            command: "bench",
            paused_time: true,
            stop: CancellationToken::new(),
            ending: CancellationToken::new(),
            progress: Some(progress_tx),
            mailer: None,
        })
        .await
        .unwrap();
        (report.summary, sim)
    });
    let wall = started.elapsed();
    let peak = peak_rss();
    println!(
        "engine run: {:.1} s wall for {:.0} simulated hours ({})",
        wall.as_secs_f64(),
        summary.simulated_hours,
        summary.outcome
    );

    // Cut-over capacity used in each window.
    let capacity: HashMap<Timestamp, u64> = plan
        .waves
        .iter()
        .map(|w| {
            let minutes = w
                .window_end_utc
                .duration_since(w.window_start_utc)
                .as_secs_f64()
                / 60.0;
            (
                w.window_start_utc,
                (COMPLETIONS as f64 * minutes / FINALIZE_MINUTES) as u64,
            )
        })
        .collect();
    let ends: HashMap<Timestamp, Timestamp> = plan
        .waves
        .iter()
        .map(|w| (w.window_start_utc, w.window_end_utc))
        .collect();
    let sizes: HashMap<Timestamp, u64> = plan
        .waves
        .iter()
        .map(|w| (w.window_start_utc, w.mailboxes))
        .collect();
    let mut cut: HashMap<Timestamp, u64> = HashMap::new();
    let mut late = 0;
    sim.with_moves(|m| {
        for mv in m.moves() {
            if let (Some(after), Some(started)) = (mv.complete_after(), mv.completion_started()) {
                if started >= after && started < ends[&after] {
                    *cut.entry(after).or_default() += 1;
                } else {
                    late += 1;
                }
            }
        }
    });
    let mut worst = f64::MAX;
    for (start, size) in &sizes {
        let expected = (*size).min(capacity[start]) as f64;
        let used = cut.get(start).copied().unwrap_or(0) as f64 / expected.max(1.0);
        worst = worst.min(used);
    }
    let stats = sim.stats();
    let calls: u64 = stats.by_cmdlet.values().map(|(ok, err)| ok + err).sum();
    let throttled_share = stats.throttled as f64 / calls.max(1) as f64;
    let migrated = summary.states["completed"] + summary.states["completed_with_warning"];
    let per_mailbox = summary.api_calls_total as f64 / migrated.max(1) as f64;
    println!(
        "migrated {migrated} of {}; cut-overs outside their window {late}",
        plan.mailboxes
    );
    println!(
        "API calls {} = {per_mailbox:.2} a migrated mailbox; 429s {} = {:.3}%",
        summary.api_calls_total,
        stats.throttled,
        throttled_share * 100.0
    );
    for (cmdlet, outcomes) in &summary.api_calls {
        println!("  {cmdlet:<27} {outcomes:?}");
    }
    println!(
        "least-used window: {:.1}% of min(wave, cut-over capacity)",
        worst * 100.0
    );
    let sim_heap = sim.with_moves(|m| m.heap_bytes()) as u64;
    println!(
        "peak memory {:.0} MiB (before the run {:.0} MiB), of which the simulator's records about {:.0} MiB",
        mib(peak),
        mib(rss_before),
        mib(sim_heap)
    );
    println!(
        "RESULT engine: {n} mailboxes, {:.1} s wall, {per_mailbox:.2} calls/mailbox, {:.3}% 429, worst window {:.1}%, peak {:.0} MiB",
        wall.as_secs_f64(),
        throttled_share * 100.0,
        worst * 100.0,
        mib(peak)
    );
}

/// The child process's part: generate the estate, import it, plan it and load the plan.
fn setup(work: &std::path::Path, n: usize) {
    let config = Config::load(&work.join("mailwave.toml")).unwrap();
    estate_with_plan(work, n, &config.schedule);
}
