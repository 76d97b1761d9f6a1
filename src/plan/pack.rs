//! Packing affinity groups into waves.
//!
//! Groups are taken in order (pilot, then priority, then organisation, so organisations stay together
//! where capacity allows) and laid into the calendar's windows one after another. When the next group
//! does not fit the room left in a window, the packer looks a bounded distance ahead for smaller groups
//! that do, so windows end up full and the plan stays at its lower bound. A group larger than any
//! window is split over the fewest consecutive windows, and the plan records that it was.

/// An affinity group to place. Members are mailbox indices with their sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub group: u32,
    pub(crate) members: Vec<(u32, u64)>,
    pub bytes: u64,
    pub pilot: bool,
    /// Sort key; `i64::MAX` for "no priority given".
    pub(crate) priority: i64,
    /// Sort key for the organisation (its rank in the inventory).
    pub(crate) organisation: u32,
}

impl Unit {
    pub fn count(&self) -> u64 {
        self.members.len() as u64
    }
}

/// Room in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub count: u64,
    /// `None`: no byte budget.
    pub bytes: Option<u64>,
}

/// One window's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// Index of the window in the calendar's sequence of open slots.
    pub(crate) slot: usize,
    pub pilot: bool,
    pub(crate) members: Vec<u32>,
    pub bytes: u64,
}

/// A group that had to be split because no window can hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub group: u32,
    pub mailboxes: u64,
    pub bytes: u64,
    pub slots: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packing {
    pub waves: Vec<Filled>,
    pub(crate) splits: Vec<Split>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the calendar ran out of open windows with {left} mailboxes still to place")]
pub struct OutOfWindows {
    pub left: u64,
}

/// How many groups that do not fit a window the packer passes over before it closes the window.
pub(crate) const LOOKAHEAD: usize = 5_000;

/// Orders units the way waves are filled.
pub(crate) fn order(units: &mut [Unit]) {
    units.sort_by_key(|u| (!u.pilot, u.priority, u.organisation, u.group));
}

struct Room {
    count: u64,
    bytes: u64,
}

impl Room {
    fn new(cap: Capacity) -> Room {
        Room {
            count: cap.count,
            bytes: cap.bytes.unwrap_or(u64::MAX),
        }
    }

    fn fits(&self, count: u64, bytes: u64) -> bool {
        count <= self.count && bytes <= self.bytes
    }

    fn take(&mut self, count: u64, bytes: u64) {
        self.count -= count;
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// Packs ordered `units` into the windows `slots` yields. Pilot units get windows of their own first.
/// `kinds` are the window sizes the calendar has: a unit that fits none of them is split.
pub fn pack(
    units: &[Unit],
    slots: &mut impl Iterator<Item = Capacity>,
    kinds: &[Capacity],
) -> Result<Packing, OutOfWindows> {
    let mut packing = Packing::default();
    let mut next_slot = 0usize;
    let (pilot, rest): (Vec<&Unit>, Vec<&Unit>) = units.iter().partition(|u| u.pilot);
    for (phase, is_pilot) in [(pilot, true), (rest, false)] {
        fill(&phase, is_pilot, slots, &mut next_slot, kinds, &mut packing)?;
    }
    Ok(packing)
}

fn fill(
    units: &[&Unit],
    pilot: bool,
    slots: &mut impl Iterator<Item = Capacity>,
    next_slot: &mut usize,
    kinds: &[Capacity],
    packing: &mut Packing,
) -> Result<(), OutOfWindows> {
    let oversized = |u: &Unit| !kinds.iter().any(|&k| Room::new(k).fits(u.count(), u.bytes));
    let mut taken = vec![false; units.len()];
    let mut left: u64 = units.iter().map(|u| u.count()).sum();
    let mut cursor = 0usize;
    // A split group in progress: (unit index, members already placed, its Split record index).
    let mut carry: Option<(usize, usize, usize)> = None;

    while left > 0 {
        let cap = slots.next().ok_or(OutOfWindows { left })?;
        let slot = *next_slot;
        *next_slot += 1;
        let mut room = Room::new(cap);
        let mut wave = Filled {
            slot,
            pilot,
            members: Vec::new(),
            bytes: 0,
        };

        if let Some((u, placed, split)) = carry.take() {
            let now = place_split(&units[u].members, placed, &mut room, &mut wave);
            left -= (now - placed) as u64;
            packing.splits[split].slots.push(slot);
            if now < units[u].members.len() {
                carry = Some((u, now, split));
                packing.waves.push(wave);
                continue;
            }
        }

        let mut skipped = 0usize;
        let mut i = cursor;
        while i < units.len() && room.count > 0 && skipped < LOOKAHEAD {
            if taken[i] {
                if i == cursor {
                    cursor += 1;
                }
                i += 1;
                continue;
            }
            let unit = units[i];
            if room.fits(unit.count(), unit.bytes) {
                room.take(unit.count(), unit.bytes);
                wave.members.extend(unit.members.iter().map(|&(m, _)| m));
                wave.bytes += unit.bytes;
                taken[i] = true;
                left -= unit.count();
            } else if oversized(unit) && wave.members.is_empty() {
                taken[i] = true;
                packing.splits.push(Split {
                    group: unit.group,
                    mailboxes: unit.count(),
                    bytes: unit.bytes,
                    slots: Vec::new(),
                });
                let split = packing.splits.len() - 1;
                carry = Some((i, 0, split));
                break;
            } else {
                skipped += 1;
            }
            if taken[i] && i == cursor {
                cursor += 1;
            }
            i += 1;
        }
        if let Some((u, 0, split)) = carry {
            // The split starts in this (empty) window: fill it from the group, then carry on.
            let now = place_split(&units[u].members, 0, &mut room, &mut wave);
            left -= now as u64;
            packing.splits[split].slots.push(slot);
            carry = (now < units[u].members.len()).then_some((u, now, split));
        }
        if !wave.members.is_empty() {
            packing.waves.push(wave);
        }
    }
    Ok(())
}

/// Places members of a split group from `placed` on until the window is full; returns how many of
/// the group's members are placed after this window.
fn place_split(
    members: &[(u32, u64)],
    mut placed: usize,
    room: &mut Room,
    wave: &mut Filled,
) -> usize {
    while placed < members.len() && room.count > 0 {
        let (m, b) = members[placed];
        // A single mailbox over every byte budget still has to move: alone in its window.
        if !room.fits(1, b) && !wave.members.is_empty() {
            break;
        }
        room.take(1, b);
        wave.members.push(m);
        wave.bytes += b;
        placed += 1;
    }
    placed
}

/// The fewest windows that could hold `count` mailboxes and `bytes` if every window were filled to
/// the brim, in calendar order.
pub(crate) fn lower_bound(count: u64, bytes: u64, slots: impl Iterator<Item = Capacity>) -> usize {
    let (mut c, mut b) = (0u64, 0u64);
    let mut n = 0;
    if count == 0 {
        return 0;
    }
    for cap in slots {
        n += 1;
        c += cap.count;
        b = b.saturating_add(cap.bytes.unwrap_or(u64::MAX));
        if c >= count && b >= bytes {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn units_from(sizes: &[(usize, bool, i64)], bytes_each: u64) -> Vec<Unit> {
        let mut next = 0u32;
        let mut units: Vec<Unit> = sizes
            .iter()
            .enumerate()
            .map(|(g, &(n, pilot, priority))| {
                let members: Vec<(u32, u64)> =
                    (0..n).map(|k| (next + k as u32, bytes_each)).collect();
                next += n as u32;
                Unit {
                    group: g as u32,
                    bytes: bytes_each * n as u64,
                    members,
                    pilot,
                    priority,
                    organisation: (g % 3) as u32,
                }
            })
            .collect();
        order(&mut units);
        units
    }

    /// Weekday/weekend alternation without a real calendar: five small windows then two large.
    fn week(small: Capacity, large: Capacity) -> impl Iterator<Item = Capacity> {
        (0..).map(move |d| if d % 7 < 5 { small } else { large })
    }

    proptest! {
        #[test]
        fn invariants_hold(
            sizes in prop::collection::vec((1usize..40, prop::bool::weighted(0.05), 0i64..3), 1..300),
            small in 5u64..60,
            large in 20u64..150,
            bytes_cap in prop::option::of(200u64..2_000),
        ) {
            let units = units_from(&sizes, 10);
            let s = Capacity { count: small, bytes: bytes_cap };
            let l = Capacity { count: large, bytes: bytes_cap.map(|b| b * 3) };
            let packing = pack(&units, &mut week(s, l), &[s, l]).unwrap();
            let caps: Vec<Capacity> = week(s, l).take(packing.waves.last().unwrap().slot + 1).collect();

            // Every mailbox exactly once.
            let mut wave_of = HashMap::new();
            for (w, wave) in packing.waves.iter().enumerate() {
                for &m in &wave.members {
                    prop_assert!(wave_of.insert(m, w).is_none(), "mailbox {} twice", m);
                }
            }
            let total: usize = sizes.iter().map(|s| s.0).sum();
            prop_assert_eq!(wave_of.len(), total);

            // No window over capacity; windows in calendar order.
            for pair in packing.waves.windows(2) {
                prop_assert!(pair[0].slot < pair[1].slot);
            }
            for wave in &packing.waves {
                let cap = caps[wave.slot];
                prop_assert!(wave.members.len() as u64 <= cap.count);
                if let Some(b) = cap.bytes {
                    prop_assert!(wave.bytes <= b || wave.members.len() == 1);
                }
            }

            // A group is split only when no window can hold it, and then it is recorded.
            let split_groups: HashMap<u32, &Split> = packing.splits.iter().map(|s| (s.group, s)).collect();
            for u in &units {
                let waves: std::collections::BTreeSet<usize> =
                    u.members.iter().map(|(m, _)| wave_of[m]).collect();
                let fits_some = [s, l].iter().any(|&k| Room::new(k).fits(u.count(), u.bytes));
                if waves.len() > 1 {
                    prop_assert!(!fits_some, "group {} split but fits a window", u.group);
                    prop_assert_eq!(split_groups[&u.group].slots.len(), waves.len());
                }
                prop_assert_eq!(split_groups.contains_key(&u.group), !fits_some);
            }

            // Pilot waves hold only pilots and come before every other wave.
            let first_bulk = packing.waves.iter().position(|w| !w.pilot).unwrap_or(packing.waves.len());
            prop_assert!(packing.waves[first_bulk..].iter().all(|w| !w.pilot));
            for wave in &packing.waves {
                for m in &wave.members {
                    let u = units.iter().find(|u| u.members.iter().any(|(x, _)| x == m)).unwrap();
                    prop_assert_eq!(u.pilot, wave.pilot);
                }
            }
        }

        #[test]
        fn single_mailboxes_meet_the_lower_bound(n in 1usize..5_000, small in 1u64..300, large in 1u64..900) {
            let units = units_from(&vec![(1, false, 0); n], 1);
            let s = Capacity { count: small, bytes: None };
            let l = Capacity { count: large, bytes: None };
            let packing = pack(&units, &mut week(s, l), &[s, l]).unwrap();
            let bound = lower_bound(n as u64, n as u64, week(s, l));
            prop_assert_eq!(packing.waves.last().unwrap().slot + 1, bound);
        }
    }

    #[test]
    fn group_too_big_for_weekdays_waits_for_the_weekend() {
        let units = units_from(&[(3, false, 0), (30, false, 0), (3, false, 0)], 1);
        let s = Capacity {
            count: 10,
            bytes: None,
        };
        let l = Capacity {
            count: 50,
            bytes: None,
        };
        let packing = pack(&units, &mut week(s, l), &[s, l]).unwrap();
        assert!(packing.splits.is_empty());
        let big = packing
            .waves
            .iter()
            .find(|w| w.members.len() >= 30)
            .unwrap();
        assert_eq!(big.slot, 5, "the first weekend window");
    }

    #[test]
    fn oversized_group_is_split_over_the_fewest_windows() {
        let units = units_from(&[(25, false, 0)], 1);
        let c = Capacity {
            count: 10,
            bytes: None,
        };
        let packing = pack(&units, &mut std::iter::repeat(c), &[c]).unwrap();
        assert_eq!(packing.splits.len(), 1);
        assert_eq!(packing.splits[0].slots, vec![0, 1, 2]);
        let counts: Vec<usize> = packing.waves.iter().map(|w| w.members.len()).collect();
        assert_eq!(counts, vec![10, 10, 5]);
    }

    #[test]
    fn running_out_of_windows_is_an_error() {
        let units = units_from(&[(5, false, 0)], 1);
        let c = Capacity {
            count: 2,
            bytes: None,
        };
        let err = pack(&units, &mut std::iter::repeat_n(c, 2), &[c]).unwrap_err();
        assert_eq!(err, OutOfWindows { left: 1 });
    }
}
