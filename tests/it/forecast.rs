//! The forecast's backtest: run the first part of a plan on the simulator, forecast the rest from
//! that history, run the rest, and compare wave by wave. Also the analytics and the forecast on the
//! command line.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use mailwave::engine::RunOptions;
use mailwave::exchange::ExchangeClient;
use mailwave::forecast::{self, WhatIf};
use mailwave::sim::transport::LocalTransport;
use mailwave::sim::{Profile, Simulator};
use mailwave::store::Store;
use mailwave::time::Clock;

use crate::engine::{engine_config, run_session};
use crate::helpers::*;

/// A service with too little room for the weekend waves: they are at risk, so the forecast has
/// something to get right.
fn tight_profile() -> Profile {
    Profile {
        max_concurrent_migrations: 4,
        throughput_gb_per_hour: 4.0 * 4.0,
        max_concurrent_completions: 400,
        stall_share: 0.05,
        transient_failure_share: 0.02,
        permanent_failure_share: 0.003,
        dcs_investigate_share: 0.0,
        dcs_poor_share: 0.0,
        injected_5xx_share: 0.0,
        exchange_requests_per_second: 50.0,
        exchange_burst: 100,
        ..Profile::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_forecast_of_the_rest_of_a_plan_matches_what_then_happens() {
    // One day of pre-stage: a weekend wave needs about as long as that to copy.
    let p = Project::new(
        &engine_config(120, 260, "").replace("prestage_days = 2", "prestage_days = 1"),
    );
    let plan = planned_estate(&p, 2_400, date(2027, 1, 4));
    let config = p.config();
    let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
    let clock = Clock::tokio(origin, 1.0);
    let sim = Arc::new(Simulator::new(tight_profile(), 5, clock).unwrap());
    {
        let store = Store::open_read_only(&p.db()).unwrap();
        sim.know_inventory(&store.load_inventory().unwrap().0);
    }
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim.clone()), clock));
    // The first part: until the fifth wave's window opens.
    let cut = plan.waves[4].window_start_utc;
    let first = run_session(
        &p,
        clock,
        service.clone(),
        RunOptions {
            until: Some(cut),
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!(first.outcome, "until", "{first:#?}");
    let now = clock.now();

    // The forecast from that history (a seed of its own).
    let store = Store::open_read_only(&p.db()).unwrap();
    let prepared = forecast::prepare(&store, &config, now, now, &Profile::default()).unwrap();
    assert!(
        prepared.calibration.measured,
        "{}",
        prepared.calibration.basis
    );
    let f = forecast::forecast(&prepared, &config, &WhatIf::default(), 99).unwrap();
    drop(store);
    let slower = forecast::forecast(
        &prepared,
        &config,
        &WhatIf {
            throughput: Some(0.5),
            ..WhatIf::default()
        },
        99,
    )
    .unwrap();
    let slow = slower.what_if.as_ref().unwrap();
    println!("{}", forecast::text(&slower, &config.schedule.timezone));
    let missed = |s: &forecast::Scenario| s.waves.iter().map(|w| w.miss).sum::<u64>();
    assert!(
        slow.at_risk >= f.base.at_risk && missed(slow) > missed(&f.base),
        "half the throughput puts more at risk: {} vs {} waves, {} vs {} mailboxes missing",
        slow.at_risk,
        f.base.at_risk,
        missed(slow),
        missed(&f.base)
    );
    println!("{}", forecast::text(&slower, &config.schedule.timezone));

    // The rest, for real.
    let rest = run_session(&p, clock, service, RunOptions::default()).await;
    assert_eq!(rest.outcome, "finished", "{rest:#?}");
    let mut actual: BTreeMap<Timestamp, u64> = BTreeMap::new();
    sim.with_moves(|m| {
        for mv in m.moves() {
            if let (Some(after), true) = (mv.complete_after(), mv.status.is_completed()) {
                *actual.entry(after).or_default() += 1;
            }
        }
    });
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for w in &f.base.waves {
        let real = actual.get(&w.window_start).copied().unwrap_or(0);
        let scale = real.max(w.cut_over).max(1) as f64;
        errors.push((w.cut_over as f64 - real as f64).abs() / scale);
        lines.push(format!(
            "{} forecast {} cut over ({:.1}% ready, {} miss), actual {real}",
            w.wave,
            w.cut_over,
            100.0 * w.ready_share,
            w.miss
        ));
    }
    let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    let worst = errors.iter().cloned().fold(0.0, f64::max);
    println!(
        "BACKTEST {} waves: mean error {:.1}%, worst {:.1}%\n{}",
        errors.len(),
        100.0 * mean,
        100.0 * worst,
        lines.join("\n")
    );
    assert!(
        errors.len() >= 8,
        "a forecast of the rest of the plan: {lines:?}"
    );
    assert!(
        f.base.waves.iter().any(|w| w.risk.is_some()),
        "the tight service puts waves at risk: {lines:?}"
    );
    assert!(mean < 0.10, "mean error {mean}: {lines:#?}");
    assert!(worst < 0.35, "worst error {worst}: {lines:#?}");
    let finish_real = sim.with_moves(|m| {
        m.moves()
            .iter()
            .filter_map(|mv| mv.completion_started())
            .max()
            .unwrap()
    });
    let off = f
        .base
        .finish
        .unwrap()
        .duration_since(finish_real)
        .abs()
        .as_hours();
    assert!(
        off <= 30,
        "finish forecast {:?} vs {finish_real}",
        f.base.finish
    );

    // The analytics of the same history, as the command line prints them.
    let out = p.run(&["analyze", "--by", "size", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["total"]["moves"].as_u64().unwrap() >= 2_000, "{v}");
    assert!(v["total"]["rate_gb_per_hour"]["p50"].as_f64().unwrap() > 0.5);
    assert!(!v["groups"].as_array().unwrap().is_empty());
    let out = p.run(&["forecast", "--json", "--concurrency", "24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["measured"], true, "{v}");
    assert!(
        v["what_if"]["label"]
            .as_str()
            .unwrap()
            .contains("concurrency 24")
    );
    let out = p.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["forecast"]["basis"].as_str().unwrap().contains("history"),
        "{v}"
    );
    let out = p.run(&["status"]);
    assert!(stdout(&out).contains("forecast (made"), "{}", stdout(&out));
    // The run moved everything the forecast spoke of: the report says there is nothing to forecast.
    let out = p.run(&["report"]);
    assert!(
        stdout(&out).contains("## Forecast\n\nNo forecast: nothing is left to move."),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("## Move analytics"),
        "{}",
        stdout(&out)
    );
    let out = p.run(&["forecast", "--window", "25:00-06:00"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--window"), "{}", stderr(&out));
}

/// `analyze` measures efficiency (mailbox size over bytes copied) on finished moves only: a move
/// that failed part of the way through copied less than its mailbox and would flatter the figure.
/// A what-if that needs more days than the plan has shows the waves it adds.
#[tokio::test(start_paused = true)]
async fn efficiency_counts_finished_moves_and_a_what_if_shows_the_waves_it_adds() {
    let (p, spec, _) = crate::report::halfway().await;
    let db = rusqlite::Connection::open(p.db()).unwrap();
    let partial: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM move_stats WHERE status NOT LIKE 'Completed%' AND bytes_transferred > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(partial > 0, "some measured moves did not finish");
    let finished: f64 = db
        .query_row(
            "SELECT SUM(COALESCE(f.total_size, m.size_bytes) + COALESCE(f.archive_size, 0)) * 1.0
                    / SUM(f.bytes_transferred)
             FROM move_stats f JOIN mailboxes m ON m.id = f.mailbox_id
             WHERE f.status LIKE 'Completed%' AND f.status <> 'CompletionInProgress'
               AND f.bytes_transferred IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let out = p.run(&["--clock", &spec, "analyze", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let efficiency = v["total"]["efficiency"].as_f64().unwrap();
    assert!(
        (efficiency - finished).abs() < 1e-9,
        "{efficiency} against {finished} over finished moves"
    );

    let what_if = ["--capacity", "4", "--weekend-capacity", "4"];
    let json = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--clock", spec.as_str(), "forecast", "--json"];
        args.extend_from_slice(extra);
        let out = p.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = json(&what_if);
    let names = |s: &serde_json::Value| -> Vec<String> {
        s["waves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["wave"].as_str().unwrap().to_string())
            .collect()
    };
    let base = names(&v["base"]);
    let added: Vec<String> = names(&v["what_if"])
        .into_iter()
        .filter(|w| !base.contains(w))
        .collect();
    assert!(!added.is_empty(), "a capacity of 4 needs more days: {v}");
    let mut args = vec!["--clock", spec.as_str(), "forecast"];
    args.extend_from_slice(&what_if);
    let out = p.run(&args);
    let text = stdout(&out);
    for wave in &added {
        let line = text
            .lines()
            .find(|l| l.starts_with(wave.as_str()))
            .unwrap_or_else(|| panic!("{wave} is not in the table:\n{text}"));
        assert!(line.contains("ADDED BY THE WHAT-IF"), "{line}");
    }
}
