//! The replay: the rest of the plan on the simulator's move model, driven the way the engine drives
//! the service (creates paced by the request budget and capped in flight, cut-over at the window
//! start, transient failures resumed after a backoff, unready mailboxes moved to the next wave when
//! the window closes), with no HTTP, JSON or database in the way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use jiff::{SignedDuration, Timestamp};

use crate::config::{DcsApproval, Window};
use crate::engine::policy;
use crate::sim::Profile;
use crate::sim::moves::{MoveService, Status};

/// A wave as the replay sees it.
#[derive(Debug, Clone)]
pub struct Wave {
    pub name: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub prestage_start: Timestamp,
}

/// Where a mailbox stands when the replay begins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// No request yet.
    Planned,
    /// A request copying, this share done.
    InFlight(f64),
    /// Copied, waiting for its cut-over.
    Synced,
    /// Nothing more will happen without the operator (failed for good, held, awaiting approval).
    Attention,
    /// Cut over (or cutting over).
    Done,
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub wave: u32,
    pub start: Start,
    pub size: u64,
    pub items: u32,
    /// Index into [`Input::sources`].
    pub source: Option<u32>,
}

/// How the engine drives the service.
#[derive(Debug, Clone)]
pub struct Engine {
    pub max_in_flight: u64,
    pub creates_per_second: f64,
    pub cutover_margin: SignedDuration,
    pub resume_backoff: SignedDuration,
    pub resume_attempts: u32,
    pub dcs_approval: DcsApproval,
    pub prestage_window: Option<Window>,
    pub timezone: jiff::tz::TimeZone,
}

pub struct Input<'a> {
    pub from: Timestamp,
    pub waves: &'a [Wave],
    pub mailboxes: &'a [Mailbox],
    pub sources: &'a [String],
    pub profile: Profile,
    pub engine: Engine,
    pub seed: u64,
}

/// What happened to each wave in the replay.
#[derive(Debug, Clone, Default)]
pub struct WaveOutcome {
    /// Mailboxes in the wave when its window opened (rolled-in ones included).
    pub at_open: u64,
    /// Of those, copied by then.
    pub synced_at_open: u64,
    /// Moved on to the next wave when the window closed.
    pub rolled_out: u64,
    pub rolled_to: Option<u32>,
    /// Cut over inside this window.
    pub cut_over: u64,
    /// Left for the operator.
    pub attention: u64,
    /// Share of its pre-stage during which moves queued for a copy slot or the in-flight cap held
    /// creates back.
    pub saturated_share: f64,
    /// Mailboxes not even created when the window opened.
    pub uncreated_at_open: u64,
    /// Mailboxes whose copy alone takes longer than the pre-stage, and the largest of them (GB).
    pub too_big: u64,
    pub largest_gb: f64,
    pub bytes: u64,
    pub prestage_hours: f64,
}

pub struct Outcome {
    pub waves: Vec<WaveOutcome>,
    /// When the last cut-over of the replay finished.
    pub finish: Option<Timestamp>,
    /// Mailboxes with no later wave to go to.
    pub stranded: u64,
    pub attention: u64,
    pub cut_over: u64,
}

const NONE: u32 = u32::MAX;
/// The longest the replay lets the service run without looking (failures to resume, the cap).
const LOOK: SignedDuration = SignedDuration::from_mins(15);
const STEP: SignedDuration = SignedDuration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Ahead,
    Open,
    Closed,
}

pub fn replay(input: Input<'_>) -> Outcome {
    let Input {
        from,
        waves,
        mailboxes,
        sources,
        profile,
        engine,
        seed,
    } = input;
    let concurrency = profile.max_concurrent_migrations.max(1) as u64;
    let cap = engine.max_in_flight.min(2 * concurrency).max(1);
    let copy_rate = profile.throughput_gb_per_hour / concurrency as f64;
    let base_s = profile.base_move_minutes * 60.0;
    let mut sim = MoveService::new(profile, seed, from);
    let n = waves.len();
    let mut outcome = vec![WaveOutcome::default(); n];
    let mut phase = vec![Phase::Ahead; n];
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut cursor = vec![0usize; n];
    let mut wave_of: Vec<u32> = mailboxes.iter().map(|m| m.wave).collect();
    let mut sim_id = vec![NONE; mailboxes.len()];
    let mut attention = vec![false; mailboxes.len()];
    let mut resumes: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::new();
    let mut resumed = vec![0u8; mailboxes.len()];
    let mut resume_due = vec![false; mailboxes.len()];
    let mut in_flight: Vec<u32> = Vec::new();
    let mut stranded = 0u64;

    // Where a closing wave's mailboxes go: the engine's rule.
    let starts = || waves.iter().map(|w| w.window_start);
    let next_wave = |w: usize, not_before: Timestamp| {
        policy::next_window(starts(), waves[w].window_start, not_before)
    };
    // Past waves' leftovers go to the first wave still ahead.
    let first_future = policy::next_window(starts(), from, from + engine.cutover_margin);
    let close_time = |w: usize| waves[w].window_end - engine.cutover_margin;

    for (i, m) in mailboxes.iter().enumerate() {
        let mut w = m.wave as usize;
        if close_time(w) <= from && matches!(m.start, Start::Planned | Start::InFlight(_)) {
            match first_future {
                Some(f) => w = f,
                None => {
                    stranded += 1;
                    continue;
                }
            }
        }
        wave_of[i] = w as u32;
        match m.start {
            Start::Done => continue,
            Start::Attention => {
                attention[i] = true;
                outcome[w].attention += 1;
                continue;
            }
            Start::InFlight(done) => {
                sim_id[i] = create(&mut sim, &waves[w], m, sources, done);
                in_flight.push(i as u32);
            }
            Start::Synced => sim_id[i] = create(&mut sim, &waves[w], m, sources, 1.0),
            Start::Planned => {}
        }
        members[w].push(i as u32);
    }
    for (w, wave) in waves.iter().enumerate() {
        outcome[w].prestage_hours = wave
            .window_start
            .duration_since(wave.prestage_start)
            .as_secs_f64()
            / 3600.0;
        if close_time(w) <= from {
            phase[w] = Phase::Closed;
        } else if wave.window_start <= from {
            phase[w] = Phase::Open;
        }
    }
    // Size: mailboxes whose own copy takes longer than the pre-stage.
    for (w, list) in members.iter().enumerate() {
        let o = &mut outcome[w];
        for &i in list {
            let m = &mailboxes[i as usize];
            o.bytes += m.size;
            let hours = (base_s + m.size as f64 / 1e9 / copy_rate.max(1e-9) * 3600.0) / 3600.0;
            if hours > o.prestage_hours {
                o.too_big += 1;
                o.largest_gb = o.largest_gb.max(m.size as f64 / 1e9);
            }
        }
    }

    let end_of_plan = waves.iter().map(|w| w.window_end).max().unwrap_or(from)
        + SignedDuration::from_hours(24 * 30);
    let mut now = from;
    let mut tokens = 0.0f64;
    let mut last = from;
    loop {
        sim.advance(now);
        // The request budget refills creates.
        tokens = (tokens + now.duration_since(last).as_secs_f64() * engine.creates_per_second)
            .min(engine.creates_per_second * 60.0 + 1.0);
        last = now;
        // In flight: still copying (or failed, waiting to be resumed).
        in_flight.retain(|&i| {
            let id = sim_id[i as usize];
            match sim.status_of(id) {
                Status::Queued | Status::InProgress => true,
                Status::Failed => {
                    if sim.failed_for_good(id)
                        || resumed[i as usize] as u32 >= engine.resume_attempts
                    {
                        mark_attention(&mut attention, &mut outcome, &wave_of, i);
                        false
                    } else {
                        if !resume_due[i as usize] {
                            resume_due[i as usize] = true;
                            let k = resumed[i as usize].min(10) as i32;
                            let wait = engine.resume_backoff.as_secs_f64() * 2f64.powi(k);
                            resumes.push(Reverse((now.as_second() + wait as i64, i)));
                        }
                        true
                    }
                }
                _ => false,
            }
        });
        while let Some(&Reverse((due, i))) = resumes.peek()
            && due <= now.as_second()
        {
            resumes.pop();
            resume_due[i as usize] = false;
            resumed[i as usize] = resumed[i as usize].saturating_add(1);
            sim.resume_direct(sim_id[i as usize]);
        }
        // Windows opening: how many are ready.
        for w in 0..n {
            if phase[w] == Phase::Ahead && waves[w].window_start <= now {
                phase[w] = Phase::Open;
                let o = &mut outcome[w];
                for &i in &members[w] {
                    if wave_of[i as usize] != w as u32 || attention[i as usize] {
                        continue;
                    }
                    o.at_open += 1;
                    let id = sim_id[i as usize];
                    if id == NONE {
                        o.uncreated_at_open += 1;
                        continue;
                    }
                    match sim.status_of(id) {
                        Status::Synced
                        | Status::CompletionInProgress
                        | Status::Completed
                        | Status::CompletedWithWarning
                        | Status::CompletedWithSkippedItems => o.synced_at_open += 1,
                        _ => {}
                    }
                    if sim.awaits_approval(id) && engine.dcs_approval == DcsApproval::Investigate {
                        sim.approve_direct(id);
                    }
                }
            }
        }
        // Windows closing: what is not cutting over moves on.
        for w in 0..n {
            if phase[w] != Phase::Open || close_time(w) > now {
                continue;
            }
            phase[w] = Phase::Closed;
            let next = next_wave(w, now + engine.cutover_margin);
            outcome[w].rolled_to = next.map(|x| x as u32);
            let list = std::mem::take(&mut members[w]);
            let mut keep = Vec::with_capacity(list.len());
            for i in list {
                let iu = i as usize;
                if wave_of[iu] != w as u32 || attention[iu] {
                    continue;
                }
                let id = sim_id[iu];
                let status = (id != NONE).then(|| sim.status_of(id));
                let unready = match status {
                    None => true,
                    Some(Status::Queued | Status::InProgress | Status::Failed) => true,
                    Some(Status::Synced) if sim.awaits_approval(id) => {
                        mark_attention(&mut attention, &mut outcome, &wave_of, i);
                        false
                    }
                    Some(Status::Synced) if sim.failed_for_good(id) => {
                        // Poor data consistency: never completes.
                        mark_attention(&mut attention, &mut outcome, &wave_of, i);
                        false
                    }
                    _ => false,
                };
                if !unready {
                    keep.push(i);
                    continue;
                }
                outcome[w].rolled_out += 1;
                match next {
                    Some(x) => {
                        wave_of[iu] = x as u32;
                        members[x].push(i);
                        if id != NONE {
                            sim.set_complete_after_direct(id, waves[x].window_start);
                        }
                    }
                    None => stranded += 1,
                }
            }
            members[w] = keep;
        }
        // Creates for every wave in pre-stage, earliest first.
        let creating_allowed = engine
            .prestage_window
            .is_none_or(|win| policy::in_local_window(win, now, &engine.timezone));
        let mut capped = false;
        let mut pending = false;
        for w in 0..n {
            if phase[w] == Phase::Closed || waves[w].prestage_start > now {
                continue;
            }
            while cursor[w] < members[w].len() {
                let i = members[w][cursor[w]];
                let iu = i as usize;
                if sim_id[iu] != NONE || wave_of[iu] != w as u32 || attention[iu] {
                    cursor[w] += 1;
                    continue;
                }
                pending = true;
                if !creating_allowed || tokens < 1.0 {
                    break;
                }
                if in_flight.len() as u64 >= cap {
                    capped = true;
                    break;
                }
                sim_id[iu] = create(&mut sim, &waves[w], &mailboxes[iu], sources, 0.0);
                in_flight.push(i);
                tokens -= 1.0;
                cursor[w] += 1;
            }
        }
        let (queued, _) = sim.copy_load();
        // Saturation, for the reasons of a wave at risk.
        let saturated = capped || queued > 0;
        // Done?
        let all_closed = phase.iter().all(|p| *p == Phase::Closed);
        if (all_closed && in_flight.is_empty() && resumes.is_empty() && sim.next_event().is_none())
            || now > end_of_plan
        {
            break;
        }
        // When to look next.
        let mut next = end_of_plan;
        for (w, wave) in waves.iter().enumerate() {
            for t in [wave.prestage_start, wave.window_start, close_time(w)] {
                if t > now && t < next {
                    next = t;
                }
            }
        }
        if let Some(&Reverse((due, _))) = resumes.peek() {
            next = next.min(Timestamp::from_second(due).unwrap_or(next));
        }
        if pending {
            next = next.min(now + STEP);
        }
        if !in_flight.is_empty() {
            next = next.min(now + LOOK);
        }
        if let Some(e) = sim.next_event() {
            next = next.min(e.max(now + STEP));
        }
        let next = next.max(now + SignedDuration::from_secs(1));
        if saturated {
            let dt = next.duration_since(now).as_secs_f64() / 3600.0;
            for w in 0..n {
                if waves[w].prestage_start <= now && phase[w] == Phase::Ahead {
                    outcome[w].saturated_share += dt;
                }
            }
        }
        now = next;
    }
    // Cut-overs: inside which window each finished.
    let mut finish: Option<Timestamp> = None;
    let mut cut_over = 0u64;
    for (i, &id) in sim_id.iter().enumerate() {
        if id == NONE {
            continue;
        }
        if let Some(done) = sim.completed_at(id)
            && matches!(
                sim.status_of(id),
                Status::Completed
                    | Status::CompletedWithWarning
                    | Status::CompletedWithSkippedItems
            )
        {
            cut_over += 1;
            finish = Some(finish.map_or(done, |f| f.max(done)));
            outcome[wave_of[i] as usize].cut_over += 1;
        }
    }
    for o in &mut outcome {
        if o.prestage_hours > 0.0 {
            o.saturated_share = (o.saturated_share / o.prestage_hours).min(1.0);
        }
    }
    let attention_total = attention.iter().filter(|a| **a).count() as u64;
    Outcome {
        waves: outcome,
        finish,
        stranded,
        attention: attention_total,
        cut_over,
    }
}

fn mark_attention(attention: &mut [bool], outcome: &mut [WaveOutcome], wave_of: &[u32], i: u32) {
    if !attention[i as usize] {
        attention[i as usize] = true;
        outcome[wave_of[i as usize] as usize].attention += 1;
    }
}

fn create(sim: &mut MoveService, wave: &Wave, m: &Mailbox, sources: &[String], done: f64) -> u32 {
    let source = m
        .source
        .and_then(|s| sources.get(s as usize))
        .map(String::as_str);
    sim.create_direct(
        &wave.name,
        wave.window_start,
        (m.size, m.items, source),
        done,
    )
}
