//! Helpers shared by the benchmark binaries (included with `mod common;`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Peak resident memory of this process so far, in bytes (Linux `VmHWM`).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub fn timed<T>(label: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    println!("{label:<44} {:>8.2} s", took.as_secs_f64());
    (out, took)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Mailbox count from `MAILWAVE_BENCH_MAILBOXES`, default the NHSmail estate.
pub fn estate_size() -> usize {
    std::env::var("MAILWAVE_BENCH_MAILBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_100_000)
}

/// Generates the synthetic estate of `n` mailboxes, imports it into `<work>/state/mailwave.db`,
/// plans it from 2027-01-04 under `schedule`, writes `<work>/schedules/bench/` and loads it.
pub fn estate_with_plan(
    work: &std::path::Path,
    n: usize,
    schedule: &mailwave::config::Schedule,
) -> mailwave::plan::Plan {
    use mailwave::inventory::{groups, summary::ImportSummary, synth};
    use mailwave::plan::{self, Calendar, files};
    use mailwave::store::Store;
    let mut inv = synth::generate(&synth::EstateSpec::new(n, 2026));
    groups::assign(&mut inv, 50);
    let mut store = Store::create(&work.join("state/mailwave.db")).unwrap();
    let summary = ImportSummary::of(&inv, 0);
    store
        .replace_inventory(
            &inv,
            "bench",
            0,
            &serde_json::to_string(&summary).unwrap(),
            jiff::Timestamp::now(),
        )
        .unwrap();
    drop(inv);
    let (inv, _) = store.load_inventory().unwrap();
    let calendar = Calendar::from_schedule(schedule).unwrap();
    let plan = plan::build(&inv, &calendar, jiff::civil::date(2027, 1, 4), "bench").unwrap();
    let dir = work.join("schedules/bench");
    files::write(&plan, &dir).unwrap();
    store
        .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
        .unwrap();
    plan
}

/// A bench's project folder: the bank-holiday file and a `mailwave.toml` of the migration keys
/// plus `extra` (which may add to `[schedule]`, then further sections). Returns the folder, the
/// config's path and the config.
#[allow(dead_code)]
pub fn bench_project(
    extra: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    mailwave::config::Config,
) {
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(work.path().join("schedules")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules/uk-bank-holidays.json"),
        work.path().join("schedules/uk-bank-holidays.json"),
    )
    .unwrap();
    let config_path = work.path().join("mailwave.toml");
    std::fs::write(
        &config_path,
        format!(
            "[migration]\nremote_host_name = \"hybrid.contoso.com\"\ntarget_delivery_domain = \"contoso.mail.onmicrosoft.com\"\n\
             [schedule]\nbank_holidays = \"schedules/uk-bank-holidays.json\"\n{extra}"
        ),
    )
    .unwrap();
    let config = mailwave::config::Config::load(&config_path).unwrap();
    (work, config_path, config)
}
