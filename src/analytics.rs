//! Move analytics from the figures a run keeps (`move_stats`): what Microsoft's AnalyzeMoveRequestStats
//! script works out by hand, per wave, source or size band: transfer rates, duration against size,
//! queueing, stalls by cause and side, efficiency, transient failures, data consistency, the lag from
//! CompleteAfter to completion, and the slowest moves with what held them up.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::exchange::figures::{
    COMPLETE_AFTER, COMPLETED_AT, IN_PROGRESS, OVERALL, QUEUED, SEEDED_AT, STALL_CAUSES,
    STARTED_AT, Side, TRANSIENT_FAILURE,
};
use crate::store::Store;
use crate::store::figures::MoveRow;

const GB: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Wave,
    Source,
    Size,
}

/// Size bands, upper bounds in GB (the last is open).
pub const SIZE_BANDS: [(f64, &str); 6] = [
    (1.0, "under 1 GB"),
    (5.0, "1-5 GB"),
    (10.0, "5-10 GB"),
    (25.0, "10-25 GB"),
    (50.0, "25-50 GB"),
    (f64::INFINITY, "50 GB and over"),
];

pub fn size_band(bytes: u64) -> usize {
    let gb = bytes as f64 / GB;
    SIZE_BANDS
        .iter()
        .position(|(upper, _)| gb < *upper)
        .unwrap_or(SIZE_BANDS.len() - 1)
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Spread {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub mean: f64,
}

impl Spread {
    pub(crate) fn of(values: &mut [f32]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable_by(f32::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize] as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        Some(Spread {
            p10: at(0.1),
            p50: at(0.5),
            p90: at(0.9),
            mean,
        })
    }
}

/// In-progress hours against size: `hours = base + per_gb * GB` (least squares).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Fit {
    pub base_hours: f64,
    pub hours_per_gb: f64,
}

/// Least squares of hours on GB, accumulated a move at a time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineFit {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl LineFit {
    pub(crate) fn add(&mut self, gb: f64, hours: f64) {
        self.n += 1.0;
        self.sx += gb;
        self.sy += hours;
        self.sxx += gb * gb;
        self.sxy += gb * hours;
    }

    pub(crate) fn count(&self) -> u64 {
        self.n as u64
    }

    /// The line through the points (their mean, flat, when every size is the same); `None` below
    /// two points.
    pub(crate) fn fit(&self) -> Option<Fit> {
        if self.n < 2.0 {
            return None;
        }
        let denom = self.n * self.sxx - self.sx * self.sx;
        let slope = if denom.abs() < 1e-9 {
            0.0
        } else {
            (self.n * self.sxy - self.sx * self.sy) / denom
        };
        Some(Fit {
            base_hours: (self.sy - slope * self.sx) / self.n,
            hours_per_gb: slope,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Slow {
    pub address: String,
    pub wave: String,
    pub gb: f64,
    pub hours_in_progress: f64,
    pub rate_gb_per_hour: f64,
    /// The stall cause with the most time, and its share of the time in progress.
    pub dominant_stall: Option<String>,
    pub stall_share: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    pub key: String,
    pub moves: u64,
    pub completed: u64,
    pub failed: u64,
    pub gb: f64,
    /// Per move: mailbox size over time in progress.
    pub rate_gb_per_hour: Option<Spread>,
    /// The group's GB over the span from its first start to its last completion.
    pub throughput_gb_per_hour: Option<f64>,
    pub duration: Option<Fit>,
    pub queued_minutes: Option<Spread>,
    /// Stalled time as a share of time in progress: in all, by side, by cause.
    pub stall_share: f64,
    pub stall_source_share: f64,
    pub stall_target_share: f64,
    pub stall_by_cause: BTreeMap<&'static str, f64>,
    /// Mailbox size over bytes transferred (1.0 = nothing copied twice).
    pub efficiency: Option<f64>,
    /// Transient-failure time as a share of the moves' overall time.
    pub transient_failure_share: f64,
    pub dcs: BTreeMap<String, u64>,
    /// Minutes from CompleteAfter to completion.
    pub cutover_lag_minutes: Option<Spread>,
    pub slowest: Vec<Slow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Analysis {
    pub by: By,
    pub wave: Option<String>,
    pub total: Group,
    pub groups: Vec<Group>,
    /// GB of moves completed in each hour (Unix seconds of the hour's start), for charts.
    pub completed_gb_by_hour: BTreeMap<i64, f64>,
    /// GB copied in each hour: each move's bytes spread evenly over its initial seeding (start to
    /// seeding done), which is when the service copies nearly all of them.
    pub copied_gb_by_hour: BTreeMap<i64, f64>,
}

#[derive(Default)]
struct Acc {
    moves: u64,
    completed: u64,
    failed: u64,
    size: f64,
    transferred: f64,
    sized_for_efficiency: f64,
    in_progress: f64,
    overall: f64,
    transient: f64,
    stalls: [f64; 9],
    rates: Vec<f32>,
    queued: Vec<f32>,
    lags: Vec<f32>,
    dcs: BTreeMap<String, u64>,
    /// In-progress hours on GB.
    line: LineFit,
    first_start: Option<i64>,
    last_done: Option<i64>,
    slowest: Vec<Slow>,
}

const SLOWEST: usize = 5;

impl Acc {
    fn add(&mut self, r: &MoveRow) {
        let f = &r.row.figures;
        self.moves += 1;
        let status = f.status.as_str();
        let finished = status.starts_with("Completed") && status != "CompletionInProgress";
        if finished {
            self.completed += 1;
        } else if status == "Failed" {
            self.failed += 1;
        }
        let size = f.total_size.unwrap_or(r.size_bytes) as f64 + f.archive_size.unwrap_or(0) as f64;
        self.size += size;
        // Only a finished move has copied all it will: a failed or unfinished one has copied part
        // of its mailbox, and would read as a move that copied less than it holds.
        if let Some(t) = f.bytes_transferred.filter(|_| finished) {
            self.transferred += t as f64;
            self.sized_for_efficiency += size;
        }
        let in_progress = f.durations[IN_PROGRESS].unwrap_or(0.0).max(0.0);
        self.in_progress += in_progress;
        self.overall += f.durations[OVERALL].unwrap_or(0.0).max(0.0);
        self.transient += f.durations[TRANSIENT_FAILURE].unwrap_or(0.0).max(0.0);
        for (acc, s) in self.stalls.iter_mut().zip(&f.stalls) {
            *acc += s.unwrap_or(0.0).max(0.0);
        }
        if let Some(q) = f.durations[QUEUED] {
            self.queued.push((q / 60.0) as f32);
        }
        if let Some(d) = &f.dcs {
            *self.dcs.entry(d.clone()).or_default() += 1;
        }
        let done = f.times[COMPLETED_AT];
        if let (Some(after), Some(done)) = (f.times[COMPLETE_AFTER], done) {
            self.lags
                .push((done.duration_since(after).as_secs_f64() / 60.0) as f32);
        }
        let hours = in_progress / 3600.0;
        if done.is_some() && hours > 0.0 {
            let gb = size / GB;
            self.rates.push((gb / hours) as f32);
            self.line.add(gb, hours);
            let stalled: f64 = f.stalled();
            let dominant = f
                .stalls
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.filter(|s| *s > 0.0).map(|s| (i, s)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| STALL_CAUSES[i].name.to_string());
            let slow = Slow {
                address: r.address.clone(),
                wave: r.wave.clone(),
                gb,
                hours_in_progress: hours,
                rate_gb_per_hour: gb / hours,
                dominant_stall: dominant,
                stall_share: (stalled / in_progress).min(1.0),
            };
            if self.slowest.len() < SLOWEST
                || self
                    .slowest
                    .last()
                    .is_some_and(|s| s.hours_in_progress < hours)
            {
                self.slowest.push(slow);
                self.slowest
                    .sort_by(|a, b| b.hours_in_progress.total_cmp(&a.hours_in_progress));
                self.slowest.truncate(SLOWEST);
            }
        }
        if let Some(start) = f.times[1] {
            let s = start.as_second();
            self.first_start = Some(self.first_start.map_or(s, |x| x.min(s)));
        }
        if let Some(done) = done {
            let d = done.as_second();
            self.last_done = Some(self.last_done.map_or(d, |x| x.max(d)));
        }
    }

    fn finish(mut self, key: String) -> Group {
        let share = |x: f64| {
            if self.in_progress > 0.0 {
                x / self.in_progress
            } else {
                0.0
            }
        };
        let side = |which: Side| {
            share(
                STALL_CAUSES
                    .iter()
                    .zip(&self.stalls)
                    .filter(|(c, _)| c.side == which)
                    .map(|(_, s)| s)
                    .sum(),
            )
        };
        let throughput = match (self.first_start, self.last_done) {
            (Some(a), Some(b)) if b > a => Some(self.size / GB / ((b - a) as f64 / 3600.0)),
            _ => None,
        };
        Group {
            key,
            moves: self.moves,
            completed: self.completed,
            failed: self.failed,
            gb: self.size / GB,
            rate_gb_per_hour: Spread::of(&mut self.rates),
            throughput_gb_per_hour: throughput,
            duration: self.line.fit(),
            queued_minutes: Spread::of(&mut self.queued),
            stall_share: share(self.stalls.iter().sum()),
            stall_source_share: side(Side::Source),
            stall_target_share: side(Side::Target),
            stall_by_cause: STALL_CAUSES
                .iter()
                .zip(&self.stalls)
                .filter(|(_, s)| **s > 0.0)
                .map(|(c, s)| (c.name, share(*s)))
                .collect(),
            efficiency: (self.transferred > 0.0)
                .then(|| self.sized_for_efficiency / self.transferred),
            transient_failure_share: if self.overall > 0.0 {
                self.transient / self.overall
            } else {
                0.0
            },
            dcs: self.dcs,
            cutover_lag_minutes: Spread::of(&mut self.lags),
            slowest: self.slowest,
        }
    }
}

/// The key of a move in a grouping.
fn key_of(by: By, r: &MoveRow) -> (usize, String) {
    match by {
        By::Wave => (0, r.wave.clone()),
        By::Source => (
            0,
            r.row
                .figures
                .source_database
                .clone()
                .or_else(|| r.source_database.clone())
                .or_else(|| r.row.figures.source_server.clone())
                .unwrap_or_else(|| "(unknown)".into()),
        ),
        By::Size => {
            let b = size_band(r.row.figures.total_size.unwrap_or(r.size_bytes));
            (b, SIZE_BANDS[b].1.to_string())
        }
    }
}

/// Analyses rows as they come (any number: only a few numbers per move are kept).
pub struct Analyzer {
    by: By,
    total: Acc,
    groups: HashMap<String, (usize, Acc)>,
    hourly: BTreeMap<i64, f64>,
    /// Changes of the copy rate (GB a minute) by minute: two per move, whatever its length.
    copy_rate: BTreeMap<i64, f64>,
}

impl Analyzer {
    pub fn new(by: By) -> Analyzer {
        Analyzer {
            by,
            total: Acc::default(),
            groups: HashMap::new(),
            hourly: BTreeMap::new(),
            copy_rate: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, r: &MoveRow) {
        self.total.add(r);
        let (order, key) = key_of(self.by, r);
        self.groups
            .entry(key)
            .or_insert_with(|| (order, Acc::default()))
            .1
            .add(r);
        let f = &r.row.figures;
        if let Some(done) = f.times[COMPLETED_AT] {
            let hour = done.as_second().div_euclid(3600) * 3600;
            *self.hourly.entry(hour).or_default() +=
                f.total_size.unwrap_or(r.size_bytes) as f64 / GB;
        }
        if let (Some(start), Some(seeded)) = (f.times[STARTED_AT], f.times[SEEDED_AT]) {
            let (from, to) = (
                start.as_second().div_euclid(60),
                seeded
                    .as_second()
                    .div_euclid(60)
                    .max(start.as_second().div_euclid(60) + 1),
            );
            let gb = f.bytes_transferred.or(f.total_size).unwrap_or(r.size_bytes) as f64 / GB;
            let rate = gb / (to - from) as f64;
            *self.copy_rate.entry(from).or_default() += rate;
            *self.copy_rate.entry(to).or_default() -= rate;
        }
    }

    pub fn finish(self, wave: Option<String>) -> Analysis {
        let mut groups: Vec<(usize, Group)> = self
            .groups
            .into_iter()
            .map(|(k, (order, acc))| (order, acc.finish(k)))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
        Analysis {
            by: self.by,
            wave,
            total: self.total.finish("all".into()),
            groups: groups.into_iter().map(|(_, g)| g).collect(),
            completed_gb_by_hour: self.hourly,
            copied_gb_by_hour: per_hour(&self.copy_rate),
        }
    }
}

/// Rate changes by minute, integrated into GB by hour (Unix seconds of the hour's start).
fn per_hour(changes: &BTreeMap<i64, f64>) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    let mut rate = 0.0;
    let mut at: Option<i64> = None;
    for (&minute, &change) in changes {
        if let Some(mut m) = at
            && rate > 1e-12
        {
            while m < minute {
                let hour = m.div_euclid(60) * 60;
                let end = (hour + 60).min(minute);
                *out.entry(hour * 60).or_default() += rate * (end - m) as f64;
                m = end;
            }
        }
        rate += change;
        at = Some(minute);
    }
    out
}

/// Analyses every move the store has figures for (of one wave when given).
pub fn analyze(store: &Store, by: By, wave: Option<&str>) -> crate::store::Result<Analysis> {
    let mut a = Analyzer::new(by);
    store.each_figures(wave, |r| a.add(&r))?;
    Ok(a.finish(wave.map(str::to_string)))
}

/// The analysis as text for a terminal or a ticket.
pub fn text(a: &Analysis) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if a.total.moves == 0 {
        out.push_str(
            "no move figures yet: a run reads them as moves finish (run.collect_statistics)\n",
        );
        return out;
    }
    let by = match a.by {
        By::Wave => "wave",
        By::Source => "source",
        By::Size => "size",
    };
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>9} {:>22} {:>9} {:>8} {:>15} {:>6} {:>7} {:>11}",
        by,
        "moves",
        "GB",
        "GB/h p10 / p50 / p90",
        "queued",
        "stalled",
        "source/target",
        "effic",
        "transnt",
        "lag p50/p90"
    );
    for g in a.groups.iter().chain(std::iter::once(&a.total)) {
        let rate = g
            .rate_gb_per_hour
            .as_ref()
            .map(|r| format!("{:.2} / {:.2} / {:.2}", r.p10, r.p50, r.p90))
            .unwrap_or_else(|| "-".into());
        let queued = g
            .queued_minutes
            .as_ref()
            .map(|q| crate::format::minutes(q.p50))
            .unwrap_or_else(|| "-".into());
        let lag = g
            .cutover_lag_minutes
            .as_ref()
            .map(|l| {
                format!(
                    "{}/{}",
                    crate::format::minutes(l.p50),
                    crate::format::minutes(l.p90)
                )
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>9.1} {:>22} {:>9} {:>7.1}% {:>6.1}%/{:>5.1}% {:>6} {:>6.2}% {:>11}",
            crate::format::clip(&g.key, 22),
            g.moves,
            g.gb,
            rate,
            queued,
            100.0 * g.stall_share,
            100.0 * g.stall_source_share,
            100.0 * g.stall_target_share,
            g.efficiency
                .map(|e| format!("{e:.2}"))
                .unwrap_or_else(|| "-".into()),
            100.0 * g.transient_failure_share,
            lag
        );
    }
    let t = &a.total;
    if let Some(fit) = &t.duration {
        let _ = writeln!(
            out,
            "\nduration against size: {:.2} h + {:.2} h a GB (time in progress)",
            fit.base_hours, fit.hours_per_gb
        );
    }
    if let Some(tp) = t.throughput_gb_per_hour {
        let _ = writeln!(
            out,
            "throughput: {tp:.1} GB/h from the first start to the last completion"
        );
    }
    if !t.stall_by_cause.is_empty() {
        let mut causes: Vec<_> = t.stall_by_cause.iter().collect();
        causes.sort_by(|a, b| b.1.total_cmp(a.1));
        let parts: Vec<String> = causes
            .iter()
            .map(|(c, s)| format!("{c} {:.1}%", 100.0 * **s))
            .collect();
        let _ = writeln!(
            out,
            "stalls by cause (share of time in progress): {}",
            parts.join(", ")
        );
    }
    if !t.dcs.is_empty() {
        let parts: Vec<String> = t.dcs.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "data consistency: {}", parts.join(", "));
    }
    if !t.slowest.is_empty() {
        let _ = writeln!(out, "\nslowest moves (time in progress):");
        for s in &t.slowest {
            let _ = writeln!(
                out,
                "  {:<40} {:<14} {:>7.2} GB {:>7.1} h {:>6.2} GB/h  {}",
                crate::format::clip(&s.address, 40),
                s.wave,
                s.gb,
                s.hours_in_progress,
                s.rate_gb_per_hour,
                match &s.dominant_stall {
                    Some(c) => format!("stalled {:.0}%, mostly {c}", 100.0 * s.stall_share),
                    None => "no stalls".into(),
                }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::figures::MoveFigures;
    use crate::store::figures::FigureRow;

    fn row(wave: &str, gb: f64, hours: f64, stall_cause: usize, stall_h: f64) -> MoveRow {
        let start: jiff::Timestamp = "2027-01-04T18:00:00Z".parse().unwrap();
        let after: jiff::Timestamp = "2027-01-05T20:00:00Z".parse().unwrap();
        let mut f = MoveFigures {
            status: "Completed".into(),
            total_size: Some((gb * GB) as u64),
            bytes_transferred: Some((gb * GB * 1.25) as u64),
            dcs: Some("Perfect".into()),
            ..MoveFigures::default()
        };
        f.durations[IN_PROGRESS] = Some(hours * 3600.0);
        f.durations[OVERALL] = Some(hours * 3600.0 + 7200.0);
        f.durations[QUEUED] = Some(600.0);
        f.durations[TRANSIENT_FAILURE] = Some(0.0);
        f.stalls[stall_cause] = Some(stall_h * 3600.0);
        f.times[1] = Some(start);
        f.times[COMPLETE_AFTER] = Some(after);
        f.times[COMPLETED_AT] = Some(after + jiff::SignedDuration::from_mins(30));
        MoveRow {
            row: FigureRow {
                mailbox_id: 1,
                collected_at: 0,
                figures: f,
            },
            address: format!("{wave}-{gb}@contoso.com"),
            wave: wave.into(),
            size_bytes: 0,
            source_database: Some("DB1".into()),
        }
    }

    #[test]
    fn data_copied_is_spread_over_each_seeding_hour_by_hour() {
        let at = |hh: i8, mm: i8| {
            jiff::civil::date(2027, 1, 4)
                .at(hh, mm, 0, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
                .timestamp()
        };
        let mut a = Analyzer::new(By::Wave);
        let mut long = row("mw-a", 1.0, 1.0, 4, 0.0);
        long.row.figures.bytes_transferred = Some((3.0 * GB) as u64);
        long.row.figures.times[STARTED_AT] = Some(at(10, 30));
        long.row.figures.times[SEEDED_AT] = Some(at(13, 30));
        let mut short = row("mw-a", 1.0, 1.0, 4, 0.0);
        short.row.figures.bytes_transferred = Some(GB as u64);
        short.row.figures.times[STARTED_AT] = Some(at(11, 0));
        short.row.figures.times[SEEDED_AT] = Some(at(11, 30));
        // Not seeded (failed early): nothing to spread.
        let mut failed = row("mw-a", 5.0, 1.0, 4, 0.0);
        failed.row.figures.times[SEEDED_AT] = None;
        for r in [&long, &short, &failed] {
            a.add(r);
        }
        let hours: Vec<(i64, f64)> = a
            .finish(None)
            .copied_gb_by_hour
            .into_iter()
            .map(|(h, gb)| (h, (gb * 1e6).round() / 1e6))
            .collect();
        let h = |hh| at(hh, 0).as_second();
        assert_eq!(
            hours,
            vec![(h(10), 0.5), (h(11), 2.0), (h(12), 1.0), (h(13), 0.5)]
        );
    }

    #[test]
    fn a_known_history_gives_known_figures() {
        let mut a = Analyzer::new(By::Wave);
        // duration = 0.5 h + 1 h a GB exactly; write-throttle stalls (target side) of 0.5 h on one
        // move, read-throttle (source) of 0.25 h on another.
        a.add(&row("mw-a", 1.0, 1.5, 4, 0.5));
        a.add(&row("mw-a", 2.0, 2.5, 3, 0.25));
        a.add(&row("mw-b", 4.0, 4.5, 4, 0.0));
        let x = a.finish(None);
        assert_eq!(x.groups.len(), 2);
        let t = &x.total;
        assert_eq!(t.moves, 3);
        assert_eq!(t.completed, 3);
        assert!((t.gb - 7.0).abs() < 1e-9);
        let fit = t.duration.as_ref().unwrap();
        assert!((fit.base_hours - 0.5).abs() < 1e-6, "{fit:?}");
        assert!((fit.hours_per_gb - 1.0).abs() < 1e-6, "{fit:?}");
        // Stalls: 0.75 h of 8.5 h in progress; 0.5 target, 0.25 source.
        assert!((t.stall_share - 0.75 / 8.5).abs() < 1e-9);
        assert!((t.stall_target_share - 0.5 / 8.5).abs() < 1e-9);
        assert!((t.stall_source_share - 0.25 / 8.5).abs() < 1e-9);
        assert!((t.efficiency.unwrap() - 0.8).abs() < 1e-6);
        // A move that failed a fifth of the way through changes no one's efficiency.
        let mut with_failed = Analyzer::new(By::Wave);
        let mut failed = row("mw-a", 10.0, 1.0, 4, 0.0);
        failed.row.figures.status = "Failed".into();
        failed.row.figures.bytes_transferred = Some((2.0 * GB) as u64);
        for r in [&row("mw-a", 1.0, 1.5, 4, 0.5), &failed] {
            with_failed.add(r);
        }
        let mixed = with_failed.finish(None).total;
        assert_eq!((mixed.completed, mixed.failed), (1, 1));
        assert!(
            (mixed.efficiency.unwrap() - 0.8).abs() < 1e-6,
            "{:?}",
            mixed.efficiency
        );
        let rate = t.rate_gb_per_hour.as_ref().unwrap();
        assert!((rate.p50 - 2.0 / 2.5).abs() < 1e-6, "{rate:?}");
        assert!((t.cutover_lag_minutes.as_ref().unwrap().p50 - 30.0).abs() < 1e-6);
        assert_eq!(t.dcs.get("Perfect"), Some(&3));
        assert_eq!(t.slowest[0].address, "mw-b-4@contoso.com");
        assert_eq!(
            t.slowest[1].dominant_stall.as_deref(),
            Some("read_throttle")
        );
        assert_eq!(x.completed_gb_by_hour.values().sum::<f64>().round(), 7.0);
        let text = text(&x);
        assert!(
            text.contains("mw-a") && text.contains("read_throttle"),
            "{text}"
        );
        let mut by_size = Analyzer::new(By::Size);
        by_size.add(&row("mw-a", 0.5, 1.0, 0, 0.0));
        by_size.add(&row("mw-a", 30.0, 10.0, 0, 0.0));
        let keys: Vec<String> = by_size
            .finish(None)
            .groups
            .into_iter()
            .map(|g| g.key)
            .collect();
        assert_eq!(keys, ["under 1 GB", "25-50 GB"]);
    }
}
