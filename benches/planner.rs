//! Import and plan the NHSmail-sized estate: 2.1 million mailboxes, ~3 million delegate edges.
//! Run: `cargo bench --bench planner` (MAILWAVE_BENCH_MAILBOXES to change the size).
//! Targets: plan in under 5 s, import included under 20 s, peak memory under 1.5 GB, plan length
//! within 1% of the lower bound; and (store) loading the plan into the database in under 15 s.

mod common;

use common::*;
use mailwave::config::Schedule;
use mailwave::inventory::{self, ImportOptions, groups, summary::ImportSummary, synth};
use mailwave::plan::{self, Calendar, files};
use mailwave::store::Store;

fn main() {
    let n = estate_size();
    let work = tempfile::tempdir().expect("temp dir");
    let estate = synth::generate(&synth::EstateSpec::new(n, 2026));
    let (mailboxes_csv, delegates_csv) =
        synth::write_csv(&estate, work.path()).expect("write estate");
    println!(
        "estate: {} mailboxes, {} delegate edges, {} organisations",
        estate.mailboxes.len(),
        estate.delegations.len(),
        estate.organisations.len()
    );
    drop(estate);
    let db = work.path().join("state/mailwave.db");

    let opts = ImportOptions::default();
    let ((), import) = timed("import: read, validate, group, store", || {
        let (mut inv, _) = inventory::read_mailboxes(&mailboxes_csv, &opts).expect("mailboxes");
        inventory::read_delegates(&delegates_csv, &mut inv, &opts).expect("delegates");
        groups::assign(&mut inv, opts.service_account_threshold);
        let summary = ImportSummary::of(&inv, 0);
        let mut store = Store::create(&db).expect("store");
        store
            .replace_inventory(
                &inv,
                "bench",
                0,
                &serde_json::to_string(&summary).unwrap(),
                jiff::Timestamp::now(),
            )
            .expect("store inventory");
        println!(
            "  groups {} (largest {}), service accounts {}",
            summary.groups,
            summary.largest_group,
            summary.service_accounts.len()
        );
    });
    let peak_import = peak_rss();

    let schedule = Schedule {
        bank_holidays: Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("schedules/uk-bank-holidays.json"),
        ),
        ..Default::default()
    };
    let calendar = Calendar::from_schedule(&schedule).expect("calendar");
    let start = jiff::civil::date(2027, 1, 4);
    let dir = work.path().join("schedules/nhs");
    let (plan, planning) = timed("plan: load inventory, pack, write files", || {
        let store = Store::open_read_only(&db).expect("store");
        let (inv, _) = store.load_inventory().expect("inventory");
        let plan = plan::build(&inv, &calendar, start, "nhs").expect("plan");
        files::write(&plan, &dir).expect("write plan");
        plan
    });
    let peak_plan = peak_rss();
    let (report, load) = timed("store: load the plan into the database", || {
        let mut store = Store::open(&db).expect("store");
        store
            .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
            .expect("load plan")
    });
    let over = plan.waves.len() as f64 / plan.lower_bound_waves as f64 - 1.0;
    println!(
        "plan: {} waves ({} pilot) for {} mailboxes, last {}; lower bound {} waves: {:.2}% over",
        plan.waves.len(),
        plan.waves.iter().filter(|w| w.pilot).count(),
        plan.mailboxes,
        plan.last_date().unwrap(),
        plan.lower_bound_waves,
        over * 100.0
    );
    let fill: Vec<f64> = plan
        .waves
        .iter()
        .filter(|w| !w.pilot)
        .map(|w| w.mailboxes as f64 / w.capacity as f64)
        .collect();
    let full = fill[..fill.len() - 1]
        .iter()
        .cloned()
        .fold(f64::MAX, f64::min);
    println!(
        "  fullest-to-emptiest bulk window fill (last excluded): min {:.4}",
        full
    );
    println!("  split groups {}", plan.split_groups.len());
    println!("  plan rows loaded {}", report.added);
    println!("peak memory after import {:>8.0} MiB", mib(peak_import));
    println!("peak memory after plan   {:>8.0} MiB", mib(peak_plan));
    println!(
        "RESULT planner: import {:.2} s, plan {:.2} s, import+plan {:.2} s, plan load {:.2} s, peak {:.0} MiB, {:.2}% over lower bound",
        import.as_secs_f64(),
        planning.as_secs_f64(),
        (import + planning).as_secs_f64(),
        load.as_secs_f64(),
        mib(peak_plan),
        over * 100.0
    );
}
