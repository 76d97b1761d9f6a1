//! The pool of sending mailboxes: each within its minute and rolling-day limits (counted from the
//! notices table at the start, so a restart does not forget what went), paced evenly through the
//! minute, rested for as long as a 429's Retry-After says, and rested for the run after repeated
//! refusals that are the sender's fault (it does not exist, or the app may not send as it).

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

/// Refusals in a row, the sender's fault, before it is rested for the run.
pub const REST_AFTER: u32 = 3;

#[derive(Debug, Clone)]
struct Sender {
    address: String,
    /// When each message of the last day went.
    sent: VecDeque<Timestamp>,
    busy: bool,
    wait_until: Option<Timestamp>,
    refusals: u32,
    rested: Option<String>,
    sent_this_run: u64,
}

#[derive(Debug, Clone)]
pub struct Pool {
    senders: Vec<Sender>,
    per_minute: u32,
    per_day: u32,
}

/// Why no sender can take a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// One will be free then (or sooner, when a call in flight ends).
    Until(Timestamp),
    /// Every free sender waits for a call in flight to end.
    Busy,
    /// Every sender is rested for the run.
    NoneLeft,
}

impl Pool {
    /// `history`: what each sender sent in the last day (from the notices table).
    pub fn new(
        addresses: &[String],
        per_minute: u32,
        per_day: u32,
        history: &[(String, Timestamp)],
    ) -> Pool {
        let senders = addresses
            .iter()
            .map(|a| Sender {
                address: a.clone(),
                sent: history
                    .iter()
                    .filter(|(s, _)| s.eq_ignore_ascii_case(a))
                    .map(|(_, t)| *t)
                    .collect(),
                busy: false,
                wait_until: None,
                refusals: 0,
                rested: None,
                sent_this_run: 0,
            })
            .collect();
        Pool {
            senders,
            per_minute: per_minute.max(1),
            per_day: per_day.max(1),
        }
    }

    pub fn address(&self, i: usize) -> &str {
        &self.senders[i].address
    }

    /// The gap between two messages of one sender: the minute's limit spread evenly.
    fn gap(&self) -> SignedDuration {
        SignedDuration::from_millis(60_000 / self.per_minute as i64 + 1)
    }

    /// When sender `i` may send next (None: rested or busy).
    fn free_at(&mut self, i: usize, now: Timestamp) -> Option<Timestamp> {
        let gap = self.gap();
        let (per_minute, per_day) = (self.per_minute as usize, self.per_day as usize);
        let s = &mut self.senders[i];
        if s.rested.is_some() || s.busy {
            return None;
        }
        let day_ago = now - SignedDuration::from_hours(24);
        while s.sent.front().is_some_and(|t| *t <= day_ago) {
            s.sent.pop_front();
        }
        let mut at = s.wait_until.unwrap_or(now).max(now);
        if let Some(last) = s.sent.back() {
            at = at.max(*last + gap);
        }
        if s.sent.len() >= per_minute {
            // The minute's limit: the per_minute-th latest must be a minute old.
            at = at.max(s.sent[s.sent.len() - per_minute] + SignedDuration::from_mins(1));
        }
        if s.sent.len() >= per_day {
            at = at.max(s.sent[s.sent.len() - per_day] + SignedDuration::from_hours(24));
        }
        Some(at)
    }

    /// The sender to use now: the free one with the most of its day left. Marks it busy.
    pub fn pick(&mut self, now: Timestamp) -> Result<usize, Wait> {
        let mut best: Option<(usize, usize)> = None;
        let mut soonest: Option<Timestamp> = None;
        let mut any_busy = false;
        for i in 0..self.senders.len() {
            if self.senders[i].busy {
                any_busy = true;
            }
            match self.free_at(i, now) {
                Some(at) if at <= now => {
                    let used = self.senders[i].sent.len();
                    if best.is_none_or(|(_, u)| used < u) {
                        best = Some((i, used));
                    }
                }
                Some(at) => soonest = Some(soonest.map_or(at, |s| s.min(at))),
                None => {}
            }
        }
        match (best, soonest) {
            (Some((i, _)), _) => {
                self.senders[i].busy = true;
                Ok(i)
            }
            (None, Some(at)) => Err(Wait::Until(at)),
            (None, None) if any_busy => Err(Wait::Busy),
            (None, None) => Err(Wait::NoneLeft),
        }
    }

    /// The service took the message (or may have): it counts against the limits.
    pub fn sent(&mut self, i: usize, at: Timestamp) {
        let s = &mut self.senders[i];
        s.busy = false;
        s.refusals = 0;
        s.sent.push_back(at);
        s.sent_this_run += 1;
    }

    /// 429: the sender waits as long as the service asks.
    pub fn throttled(&mut self, i: usize, until: Timestamp) {
        let s = &mut self.senders[i];
        s.busy = false;
        s.wait_until = Some(until);
    }

    /// The call failed for a reason that is not the sender's.
    pub fn released(&mut self, i: usize) {
        self.senders[i].busy = false;
    }

    /// The service refused the sender itself; after [`REST_AFTER`] in a row it is rested for
    /// the run. Returns true when this rests it.
    pub fn refused(&mut self, i: usize, reason: &str) -> bool {
        let s = &mut self.senders[i];
        s.busy = false;
        s.refusals += 1;
        if s.refusals >= REST_AFTER && s.rested.is_none() {
            s.rested = Some(reason.to_string());
            return true;
        }
        false
    }

    /// Senders still in use.
    pub fn usable(&self) -> usize {
        self.senders.iter().filter(|s| s.rested.is_none()).count()
    }

    /// Messages the usable senders may still send in the next `minutes` (for sizing a batch).
    pub fn room(&mut self, now: Timestamp, minutes: u32) -> usize {
        let day_ago = now - SignedDuration::from_hours(24);
        self.senders
            .iter()
            .filter(|s| s.rested.is_none())
            .map(|s| {
                let today = s.sent.iter().filter(|t| **t > day_ago).count();
                (self.per_day as usize)
                    .saturating_sub(today)
                    .min((self.per_minute * minutes) as usize)
            })
            .sum()
    }

    /// (sender, messages this run, why it was rested).
    pub fn report(&self) -> Vec<(String, u64, Option<String>)> {
        self.senders
            .iter()
            .map(|s| (s.address.clone(), s.sent_this_run, s.rested.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn no_sender_goes_over_its_minute_or_its_day() {
        let names = vec!["a@x.org".to_string(), "b@x.org".to_string()];
        let mut pool = Pool::new(&names, 30, 100, &[]);
        let mut now = t(0);
        let mut sends: Vec<(usize, Timestamp)> = Vec::new();
        while now < t(6 * 3600) {
            match pool.pick(now) {
                Ok(i) => {
                    pool.sent(i, now);
                    sends.push((i, now));
                }
                Err(Wait::Until(at)) => now = at,
                Err(w) => panic!("{w:?}"),
            }
        }
        for i in 0..2 {
            let mine: Vec<Timestamp> = sends.iter().filter(|s| s.0 == i).map(|s| s.1).collect();
            assert_eq!(mine.len(), 100, "the day's limit, and all of it used");
            for (k, at) in mine.iter().enumerate() {
                let in_minute = mine[..=k]
                    .iter()
                    .filter(|x| at.duration_since(**x) < SignedDuration::from_mins(1))
                    .count();
                assert!(in_minute <= 30, "{in_minute} in a minute");
            }
        }
        // A restart knows what went: the same day is still full.
        let history: Vec<(String, Timestamp)> = sends
            .iter()
            .map(|(i, at)| (names[*i].clone(), *at))
            .collect();
        let mut again = Pool::new(&names, 30, 100, &history);
        assert!(matches!(again.pick(t(6 * 3600)), Err(Wait::Until(at)) if at > t(20 * 3600)));
    }

    #[test]
    fn throttled_senders_wait_and_refused_ones_are_rested() {
        let names = vec!["a@x.org".to_string(), "b@x.org".to_string()];
        let mut pool = Pool::new(&names, 30, 10_000, &[]);
        let i = pool.pick(t(0)).unwrap();
        pool.throttled(i, t(40));
        let j = pool.pick(t(1)).unwrap();
        assert_ne!(i, j, "the other sender takes it");
        for k in 0..REST_AFTER as i64 {
            if k > 0 {
                assert_eq!(pool.pick(t(1 + k)), Ok(j));
            }
            let rested = pool.refused(j, "ErrorInvalidUser");
            assert_eq!(rested, k == REST_AFTER as i64 - 1);
        }
        assert_eq!(pool.usable(), 1);
        assert_eq!(pool.pick(t(5)), Err(Wait::Until(t(40))));
        assert_eq!(pool.pick(t(40)), Ok(i));
    }
}
