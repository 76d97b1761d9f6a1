//! A simulator profile calibrated from this estate's measured moves: per-move transfer rate and fixed
//! cost (duration against size), stalls, failures, data consistency, finalisation time and the
//! concurrency the service allowed. Until enough moves are measured, the simulator's defaults.

use serde::Serialize;

use crate::analytics::{LineFit, Spread};
use crate::exchange::figures::{
    COMPLETE_AFTER, COMPLETED_AT, FAILED, IN_PROGRESS, QUEUED, SUSPENDED, TRANSIENT_FAILURE,
};
use crate::sim::Profile;
use crate::store::figures::MoveRow;

/// Completed moves with figures needed before the history replaces the defaults.
pub const MIN_MOVES: u64 = 200;

/// The simulator copies a move in `(base + size / rate) * U(0.8, 1.25)`: the mean of that factor.
const COPY_FACTOR_MEAN: f64 = 1.0125;

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Calibration {
    /// Whether the profile comes from this estate's history.
    pub measured: bool,
    /// What it is based on, in words.
    pub basis: String,
    pub moves: u64,
    pub per_move_gb_per_hour: f64,
    pub base_minutes: f64,
    /// Moves copying at once; `concurrency_reached` says whether the history saw moves queue for
    /// a slot (otherwise the figure is a lower bound, raised to the documented default).
    pub concurrency: u32,
    pub concurrency_reached: bool,
    pub stall_share: f64,
    pub stall_minutes: f64,
    pub transient_failure_share: f64,
    pub permanent_failure_share: f64,
    pub dcs_investigate_share: f64,
    pub dcs_poor_share: f64,
    pub finalization_minutes: f64,
}

#[derive(Default)]
pub struct Calibrator {
    /// Copying hours (time in progress less stalls) on GB.
    line: LineFit,
    moves: u64,
    stalled: u64,
    stall_seconds: f64,
    transient: u64,
    failed: u64,
    investigate: u64,
    poor: u64,
    lags: Vec<f32>,
    queued_long: u64,
    /// (time, +1 start / -1 end) of copying, for the peak concurrency.
    spans: Vec<(i64, i32)>,
}

impl Calibrator {
    pub fn add(&mut self, r: &MoveRow) {
        let f = &r.row.figures;
        self.moves += 1;
        if f.status == "Failed" {
            self.failed += 1;
        }
        match f.dcs.as_deref() {
            Some("Investigate") => self.investigate += 1,
            Some("Poor") => self.poor += 1,
            _ => {}
        }
        if f.durations[TRANSIENT_FAILURE].unwrap_or(0.0) > 0.0 {
            self.transient += 1;
        }
        if f.durations[QUEUED].unwrap_or(0.0) > 600.0 {
            self.queued_long += 1;
        }
        let stall = f.stalled();
        if stall > 0.0 {
            self.stalled += 1;
            self.stall_seconds += stall;
        }
        let done = f.times[COMPLETED_AT];
        if let (Some(after), Some(done)) = (f.times[COMPLETE_AFTER], done) {
            let lag = done.duration_since(after).as_secs_f64() / 60.0;
            if lag >= 0.0 {
                self.lags.push(lag as f32);
            }
        }
        let in_progress = f.durations[IN_PROGRESS].unwrap_or(0.0);
        let size = f.total_size.unwrap_or(r.size_bytes) as f64 / 1e9;
        if done.is_some() && in_progress > 0.0 {
            self.line.add(size, (in_progress - stall).max(0.0) / 3600.0);
        }
        // Copying spans of moves that copied in one go (a failure or suspension leaves its slot
        // while the span still covers it).
        let interrupted = [SUSPENDED, FAILED, TRANSIENT_FAILURE]
            .iter()
            .any(|&i| f.durations[i].unwrap_or(0.0) > 0.0);
        if let (Some(start), Some(seeded), false) = (f.times[1], f.times[2], interrupted)
            && seeded > start
        {
            self.spans.push((start.as_second(), 1));
            self.spans.push((seeded.as_second(), -1));
        }
    }

    /// The calibration, over `defaults` for whatever the history cannot say.
    pub fn finish(mut self, defaults: &Profile) -> Calibration {
        let d = defaults;
        let default_rate = d.throughput_gb_per_hour / d.max_concurrent_migrations.max(1) as f64;
        let completed = self.line.count();
        if completed < MIN_MOVES {
            return Calibration {
                measured: false,
                basis: format!(
                    "the simulator's defaults: {completed} completed moves measured, {MIN_MOVES} needed (run.collect_statistics)"
                ),
                moves: self.moves,
                per_move_gb_per_hour: default_rate,
                base_minutes: d.base_move_minutes,
                concurrency: d.max_concurrent_migrations,
                concurrency_reached: false,
                stall_share: d.stall_share,
                stall_minutes: d.stall_minutes,
                transient_failure_share: d.transient_failure_share,
                permanent_failure_share: d.permanent_failure_share,
                dcs_investigate_share: d.dcs_investigate_share,
                dcs_poor_share: d.dcs_poor_share,
                finalization_minutes: d.finalization_minutes,
            };
        }
        let fit = self.line.fit().unwrap_or_default();
        let (base_h, per_gb_h) = (fit.base_hours, fit.hours_per_gb);
        // A move's fixed cost and its rate, as the simulator's copy formula has them.
        let base_minutes = (base_h * 60.0 / COPY_FACTOR_MEAN).max(0.0);
        let rate = if per_gb_h > 1e-6 {
            COPY_FACTOR_MEAN / per_gb_h
        } else {
            default_rate
        };
        self.spans.sort_unstable();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, step) in &self.spans {
            now += step;
            peak = peak.max(now);
        }
        let reached = self.queued_long as f64 > 0.05 * self.moves as f64;
        let concurrency = if reached {
            peak.max(1) as u32
        } else {
            (peak.max(0) as u32).max(d.max_concurrent_migrations)
        };
        let share = |k: u64| k as f64 / self.moves.max(1) as f64;
        let finalization =
            Spread::of(&mut self.lags).map_or(d.finalization_minutes, |s| s.p50.max(0.5));
        let stall_minutes = if self.stalled > 0 {
            self.stall_seconds / self.stalled as f64 / 60.0
        } else {
            d.stall_minutes
        };
        Calibration {
            measured: true,
            basis: format!(
                "this estate's history: {completed} completed moves of {} measured",
                self.moves
            ),
            moves: self.moves,
            per_move_gb_per_hour: rate,
            base_minutes,
            concurrency,
            concurrency_reached: reached,
            stall_share: share(self.stalled),
            stall_minutes,
            transient_failure_share: share(self.transient),
            permanent_failure_share: share(self.failed),
            dcs_investigate_share: share(self.investigate),
            dcs_poor_share: share(self.poor),
            finalization_minutes: finalization,
        }
    }
}

impl Calibration {
    /// The simulator profile these figures describe.
    pub fn apply(&self, base: &Profile) -> Profile {
        Profile {
            max_concurrent_migrations: self.concurrency.max(1),
            throughput_gb_per_hour: self.per_move_gb_per_hour * self.concurrency.max(1) as f64,
            base_move_minutes: self.base_minutes,
            // The per-item cost is inside the fitted fixed cost and rate.
            seconds_per_item: if self.measured {
                0.0
            } else {
                base.seconds_per_item
            },
            stall_share: self.stall_share,
            stall_minutes: self.stall_minutes,
            transient_failure_share: self.transient_failure_share,
            permanent_failure_share: self.permanent_failure_share,
            dcs_investigate_share: self.dcs_investigate_share,
            dcs_poor_share: self.dcs_poor_share,
            finalization_minutes: self.finalization_minutes,
            // The replay is mailwave's model of the service, not of the network.
            injected_5xx_share: 0.0,
            replication_lag_seconds: 0.0,
            // Sizes come from the inventory; source speeds are inside the measured rate.
            source_speed_spread: 0.0,
            ..base.clone()
        }
    }
}
