//! `mailwave forecast`: will each coming wave be ready? The rest of the plan is replayed, from where
//! every mailbox stands now, on the simulator's move model with a profile calibrated from this
//! estate's measured moves ([`calibrate`]); [`replay`] drives it the way the engine would. What-if
//! options replay it again with a changed capacity, window, pre-stage, throughput or concurrency.

pub mod calibrate;
pub mod replay;

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Window};
use crate::plan::calendar::Calendar;
use crate::sim::Profile;
use crate::store::{FailureClass, State, Store};
use calibrate::{Calibration, Calibrator};
use replay::{Engine, Mailbox, Start, Wave};

/// A wave is at risk below this share ready when its window opens.
pub const READY_TARGET: f64 = 0.95;

/// Changes to replay side by side with the base case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhatIf {
    pub capacity: Option<u64>,
    pub weekend_capacity: Option<u64>,
    pub window: Option<Window>,
    pub prestage_days: Option<u32>,
    /// Multiplies the per-move transfer rate.
    pub throughput: Option<f64>,
    pub concurrency: Option<u32>,
}

impl WhatIf {
    pub fn is_empty(&self) -> bool {
        *self == WhatIf::default()
    }

    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.capacity {
            parts.push(format!("weekday capacity {c}"));
        }
        if let Some(c) = self.weekend_capacity {
            parts.push(format!("weekend capacity {c}"));
        }
        if let Some(w) = self.window {
            parts.push(format!("window {w}"));
        }
        if let Some(d) = self.prestage_days {
            parts.push(format!("pre-stage {d} days"));
        }
        if let Some(t) = self.throughput {
            parts.push(format!("throughput x{t}"));
        }
        if let Some(c) = self.concurrency {
            parts.push(format!("concurrency {c}"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaveForecast {
    pub wave: String,
    /// The window in the schedule's zone, for people.
    pub window: String,
    pub window_start: Timestamp,
    /// Mailboxes in the wave when its window opens (those rolled in from earlier waves included).
    pub mailboxes: u64,
    /// Share of them copied by then.
    pub ready_share: f64,
    /// Expected to miss the window (not copied by its close), and the wave they roll to.
    pub miss: u64,
    pub rolls_to: Option<String>,
    pub cut_over: u64,
    pub attention: u64,
    /// Why the wave is at risk, when it is.
    pub risk: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scenario {
    pub label: String,
    pub waves: Vec<WaveForecast>,
    /// The last cut-over, and how many mailboxes cut over, need the operator, or have no later
    /// wave to go to.
    pub finish: Option<Timestamp>,
    pub finish_local: Option<String>,
    pub cut_over: u64,
    pub attention: u64,
    pub without_a_wave: u64,
    pub at_risk: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Forecast {
    pub made_at: Timestamp,
    pub from: Timestamp,
    /// What the replay's service is calibrated on (`basis` says it in words).
    #[serde(flatten)]
    pub calibration: Calibration,
    /// The share of a wave that must be copied when its window opens for it not to be at risk.
    pub ready_target: f64,
    pub base: Scenario,
    pub what_if: Option<Scenario>,
    /// Wall-clock seconds the forecast took.
    pub seconds: f64,
}

/// Everything the replay starts from.
pub struct Prepared {
    /// When the forecast is made (the command's clock), and the moment it replays from.
    pub now: Timestamp,
    pub from: Timestamp,
    pub waves: Vec<Wave>,
    pub mailboxes: Vec<Mailbox>,
    pub sources: Vec<String>,
    pub calibration: Calibration,
    /// The simulator profile the calibration describes.
    pub profile: Profile,
    pub engine: Engine,
    pub timezone: jiff::tz::TimeZone,
}

/// Reads the plan, where every mailbox stands, and the history to calibrate on.
pub fn prepare(
    store: &Store,
    config: &Config,
    now: Timestamp,
    from: Timestamp,
    defaults: &Profile,
) -> anyhow::Result<Prepared> {
    let rows = store.waves()?;
    let mut index: HashMap<i64, u32> = HashMap::new();
    let mut waves = Vec::with_capacity(rows.len());
    let mut sorted = rows;
    sorted.sort_by_key(|w| w.window_start);
    for w in &sorted {
        index.insert(w.id, waves.len() as u32);
        waves.push(Wave {
            name: w.name.clone(),
            window_start: w.window_start,
            window_end: w.window_end,
            prestage_start: w.prestage_start,
        });
    }
    let mut sources: Vec<String> = Vec::new();
    let mut source_ids: HashMap<String, u32> = HashMap::new();
    let mut mailboxes = Vec::new();
    store.each_plan_mailbox(|m| {
        let Some(&wave) = index.get(&m.wave_id) else {
            return;
        };
        let start = match m.state {
            State::Planned => Start::Planned,
            State::Submitted | State::Syncing => Start::InFlight(m.percent as f64 / 95.0),
            State::Synced => Start::Synced,
            State::Failed if m.failure_class == Some(FailureClass::Transient) => {
                Start::InFlight(m.percent as f64 / 95.0)
            }
            State::Failed | State::Held => Start::Attention,
            State::Completing | State::Completed | State::CompletedWithWarning | State::Skipped => {
                Start::Done
            }
        };
        let source = m.source_database.map(|db| {
            *source_ids.entry(db.clone()).or_insert_with(|| {
                sources.push(db);
                (sources.len() - 1) as u32
            })
        });
        mailboxes.push(Mailbox {
            wave,
            start,
            size: m.size_bytes,
            items: m.items,
            source,
        });
    })?;
    let mut cal = Calibrator::default();
    store.each_figures(None, |r| cal.add(&r))?;
    let calibration = cal.finish(defaults);
    let profile = calibration.apply(defaults);
    let run = &config.run;
    Ok(Prepared {
        now,
        from,
        waves,
        mailboxes,
        sources,
        calibration,
        profile,
        engine: Engine {
            max_in_flight: run.max_in_flight,
            // Listings and statistics share the request budget with creates.
            creates_per_second: run.requests_per_second * 0.8,
            cutover_margin: run.cutover_margin,
            resume_backoff: run.resume_backoff,
            resume_attempts: run.resume_attempts,
            dcs_approval: run.dcs_approval,
            prestage_window: run.prestage_window,
            timezone: config.schedule.timezone.clone(),
        },
        timezone: config.schedule.timezone.clone(),
    })
}

/// Runs the base case (and the what-if, when given).
pub fn forecast(
    p: &Prepared,
    config: &Config,
    what_if: &WhatIf,
    seed: u64,
) -> anyhow::Result<Forecast> {
    let started = std::time::Instant::now();
    let base = scenario(p, &p.waves, &p.mailboxes, &p.profile, "base".into(), seed);
    let what_if = if what_if.is_empty() {
        None
    } else {
        let mut profile = p.profile.clone();
        let rate = profile.throughput_gb_per_hour / profile.max_concurrent_migrations.max(1) as f64;
        if let Some(c) = what_if.concurrency {
            profile.max_concurrent_migrations = c.max(1);
        }
        let factor = what_if.throughput.unwrap_or(1.0);
        profile.throughput_gb_per_hour =
            rate * factor * profile.max_concurrent_migrations.max(1) as f64;
        let (waves, mailboxes) = rearrange(p, config, what_if)?;
        Some(scenario(
            p,
            &waves,
            &mailboxes,
            &profile,
            what_if.label(),
            seed,
        ))
    };
    Ok(Forecast {
        made_at: p.now,
        from: p.from,
        calibration: p.calibration.clone(),
        ready_target: READY_TARGET,
        base,
        what_if,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn scenario(
    p: &Prepared,
    waves: &[Wave],
    mailboxes: &[Mailbox],
    profile: &Profile,
    label: String,
    seed: u64,
) -> Scenario {
    let out = replay::replay(replay::Input {
        from: p.from,
        waves,
        mailboxes,
        sources: &p.sources,
        profile: profile.clone(),
        engine: p.engine.clone(),
        seed,
    });
    let concurrency = profile.max_concurrent_migrations.max(1);
    let give = profile.throughput_gb_per_hour;
    let cap = p.engine.max_in_flight.min(2 * concurrency as u64);
    let mut list = Vec::new();
    for (w, o) in waves.iter().zip(&out.waves) {
        if w.window_end - p.engine.cutover_margin <= p.from {
            continue;
        }
        let ready = if o.at_open > 0 {
            o.synced_at_open as f64 / o.at_open as f64
        } else {
            1.0
        };
        let risk = (ready < READY_TARGET || o.rolled_out > 0).then(|| {
            let mut why = Vec::new();
            if o.too_big > 0 {
                why.push(format!(
                    "size: {} mailbox(es) take longer to copy than the {:.0} h pre-stage (largest {:.0} GB)",
                    o.too_big, o.prestage_hours, o.largest_gb
                ));
            }
            if o.saturated_share > 0.5 {
                why.push(format!(
                    "concurrency: moves waited for one of {concurrency} copy slots (or the in-flight cap of {cap}) {:.0}% of the pre-stage",
                    100.0 * o.saturated_share
                ));
            } else if o.uncreated_at_open > 0 {
                why.push(format!(
                    "create rate: {} mailbox(es) had no move request when the window opened (run.requests_per_second, run.prestage_window)",
                    o.uncreated_at_open
                ));
            }
            if why.is_empty() || o.saturated_share > 0.5 {
                let need = o.bytes as f64 / 1e9 / o.prestage_hours.max(0.1);
                why.push(format!(
                    "throughput: {:.0} GB to copy in {:.0} h needs {:.0} GB/h; the service gives about {:.0} GB/h",
                    o.bytes as f64 / 1e9,
                    o.prestage_hours,
                    need,
                    give
                ));
            }
            why.join("; ")
        });
        list.push(WaveForecast {
            wave: w.name.clone(),
            window: local_window(w, &p.timezone),
            window_start: w.window_start,
            mailboxes: o.at_open,
            ready_share: ready,
            miss: o.rolled_out,
            rolls_to: o
                .rolled_to
                .filter(|_| o.rolled_out > 0)
                .map(|x| waves[x as usize].name.clone()),
            cut_over: o.cut_over,
            attention: o.attention,
            risk,
        });
    }
    Scenario {
        label,
        at_risk: list.iter().filter(|w| w.risk.is_some()).count() as u64,
        waves: list,
        finish: out.finish,
        finish_local: out.finish.map(|t| crate::format::local(t, &p.timezone)),
        cut_over: out.cut_over,
        attention: out.attention,
        without_a_wave: out.stranded,
    }
}

fn local_window(w: &Wave, tz: &jiff::tz::TimeZone) -> String {
    let s = w.window_start.to_zoned(tz.clone());
    let e = w.window_end.to_zoned(tz.clone());
    format!(
        "{} {}-{}",
        s.strftime("%a %d %b"),
        s.strftime("%H:%M"),
        e.strftime("%H:%M")
    )
}

/// The waves and mailboxes of a what-if: windows and pre-stage recomputed on each wave's date;
/// with a new capacity, the mailboxes still to move re-packed in plan order into the coming
/// waves (and more days from the calendar when they need them).
fn rearrange(
    p: &Prepared,
    config: &Config,
    what_if: &WhatIf,
) -> anyhow::Result<(Vec<Wave>, Vec<Mailbox>)> {
    let mut schedule = config.schedule.clone();
    if let Some(w) = what_if.window {
        schedule.cutover_window = w;
    }
    if let Some(d) = what_if.prestage_days {
        schedule.prestage_days = d;
    }
    if let Some(c) = what_if.capacity {
        schedule.weekday_capacity = c;
    }
    if let Some(c) = what_if.weekend_capacity {
        schedule.weekend_capacity = c;
    }
    let calendar = Calendar::from_schedule(&schedule)?;
    let tz = &p.timezone;
    let mut waves: Vec<Wave> = Vec::with_capacity(p.waves.len());
    let mut capacity: Vec<u64> = Vec::with_capacity(p.waves.len());
    for w in &p.waves {
        let date = w.window_start.to_zoned(tz.clone()).date();
        let (start, end) = match what_if.window {
            Some(_) => {
                let (s, e) = calendar.window_on(date)?;
                (s.timestamp(), e.timestamp())
            }
            None => (w.window_start, w.window_end),
        };
        let prestage = match what_if.prestage_days {
            Some(d) => start - SignedDuration::from_hours(24 * d as i64),
            None if what_if.window.is_some() => {
                start - w.window_start.duration_since(w.prestage_start)
            }
            None => w.prestage_start,
        };
        capacity.push(match Calendar::kind_of(date) {
            crate::plan::calendar::DayKind::Weekday => calendar.weekday_capacity,
            crate::plan::calendar::DayKind::Weekend => calendar.weekend_capacity,
        });
        waves.push(Wave {
            name: w.name.clone(),
            window_start: start,
            window_end: end,
            prestage_start: prestage,
        });
    }
    let mut mailboxes = p.mailboxes.clone();
    if what_if.capacity.is_none() && what_if.weekend_capacity.is_none() {
        return Ok((waves, mailboxes));
    }
    // Re-pack what is still to move into the waves whose windows are ahead.
    let ahead = |w: &Wave| w.window_end - p.engine.cutover_margin > p.from;
    let mut w = waves.iter().position(ahead).unwrap_or(waves.len());
    let mut used = 0u64;
    let last_date = p
        .waves
        .last()
        .map(|x| x.window_start.to_zoned(tz.clone()).date());
    let mut extra = match last_date {
        Some(d) => Box::new(calendar.slots_from(d.tomorrow()?))
            as Box<dyn Iterator<Item = Result<crate::plan::calendar::Slot, _>>>,
        None => Box::new(std::iter::empty()),
    };
    for m in mailboxes
        .iter_mut()
        .filter(|m| matches!(m.start, Start::Planned | Start::InFlight(_) | Start::Synced))
    {
        while w >= waves.len() || used >= capacity[w] {
            if w + 1 < waves.len() {
                w += 1;
                used = 0;
                continue;
            }
            let Some(slot) = extra.next().transpose()? else {
                anyhow::bail!("the what-if needs more days than the calendar has");
            };
            waves.push(Wave {
                name: crate::plan::wave_id(slot.date),
                window_start: slot.start.timestamp(),
                window_end: slot.end.timestamp(),
                prestage_start: slot.prestage_start.timestamp(),
            });
            capacity.push(slot.capacity);
            w = waves.len() - 1;
            used = 0;
        }
        m.wave = w as u32;
        used += 1;
    }
    Ok((waves, mailboxes))
}

/// The forecast as text, times in `tz`: every coming wave, side by side with the what-if when
/// there is one, and after them the waves only the what-if has (the days a smaller capacity adds).
pub fn text(f: &Forecast, tz: &jiff::tz::TimeZone) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forecast from {}, replayed on the simulator calibrated on {} ({:.2} GB/h a move, {} at once)",
        crate::format::local(f.from, tz),
        f.calibration.basis,
        f.calibration.per_move_gb_per_hour,
        f.calibration.concurrency
    );
    let other: HashMap<&str, &WaveForecast> = f
        .what_if
        .iter()
        .flat_map(|s| s.waves.iter().map(|w| (w.wave.as_str(), w)))
        .collect();
    if let Some(w) = &f.what_if {
        let _ = writeln!(out, "what if: {} (right of each |)", w.label);
    }
    let _ = writeln!(
        out,
        "\n{:<14} {:<24} {:>9} {:>14} {:>7} {:<14} {:>8} {:>6}",
        "wave", "window", "mailboxes", "ready at open", "miss", "rolls to", "cut over", "attn"
    );
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    for w in &f.base.waves {
        let (ready, miss) = match other.get(w.wave.as_str()) {
            Some(o) => (
                format!("{}|{}", pct(w.ready_share), pct(o.ready_share)),
                format!("{}|{}", w.miss, o.miss),
            ),
            None => (pct(w.ready_share), w.miss.to_string()),
        };
        let _ = writeln!(
            out,
            "{:<14} {:<24} {:>9} {:>14} {:>7} {:<14} {:>8} {:>6}{}",
            w.wave,
            w.window,
            w.mailboxes,
            ready,
            miss,
            w.rolls_to.as_deref().unwrap_or("-"),
            w.cut_over,
            w.attention,
            if w.risk.is_some() { "  AT RISK" } else { "" }
        );
    }
    let base: std::collections::HashSet<&str> =
        f.base.waves.iter().map(|w| w.wave.as_str()).collect();
    for w in f
        .what_if
        .iter()
        .flat_map(|s| &s.waves)
        .filter(|w| !base.contains(w.wave.as_str()))
    {
        let _ = writeln!(
            out,
            "{:<14} {:<24} {:>9} {:>14} {:>7} {:<14} {:>8} {:>6}  ADDED BY THE WHAT-IF{}",
            w.wave,
            w.window,
            w.mailboxes,
            format!("-|{}", pct(w.ready_share)),
            format!("-|{}", w.miss),
            w.rolls_to.as_deref().unwrap_or("-"),
            w.cut_over,
            w.attention,
            if w.risk.is_some() { ", AT RISK" } else { "" }
        );
    }
    for s in std::iter::once(&f.base).chain(&f.what_if) {
        let _ = writeln!(
            out,
            "\n{}: the estate finishes {}; {} cut over, {} need the operator, {} with no later wave; {} wave(s) at risk",
            s.label,
            s.finish_local
                .as_deref()
                .unwrap_or("(nothing left to cut over)"),
            s.cut_over,
            s.attention,
            s.without_a_wave,
            s.at_risk
        );
    }
    let risky: Vec<&WaveForecast> = f.base.waves.iter().filter(|w| w.risk.is_some()).collect();
    if !risky.is_empty() {
        let _ = writeln!(out, "\nwaves at risk (base case):");
        for w in risky {
            let _ = writeln!(
                out,
                "  {}: {:.1}% ready at open, {} to {}: {}",
                w.wave,
                100.0 * w.ready_share,
                w.miss,
                w.rolls_to.as_deref().unwrap_or("no later wave"),
                w.risk.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "\n(forecast took {:.1} s)", f.seconds);
    out
}
