//! A case-insensitive address index for millions of mailboxes. It keys a hash table by a 64-bit hash
//! of the lower-cased address instead of by the address itself, so it allocates nothing per mailbox
//! and stays small (16 bytes an entry). Every hit is checked against the real address, and the rare
//! addresses whose hash collides with another's are kept aside, so a collision can never merge two
//! mailboxes.

use std::hash::Hasher;

use rustc_hash::{FxHashMap, FxHasher};

fn key(address: &str) -> u64 {
    let mut h = FxHasher::default();
    for chunk in address.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        for (w, b) in word.iter_mut().zip(chunk) {
            *w = b.to_ascii_lowercase();
        }
        h.write_u64(u64::from_le_bytes(word));
    }
    h.write_usize(address.len());
    h.finish()
}

#[derive(Debug, Default)]
pub struct AddressIndex {
    map: FxHashMap<u64, u32>,
    /// Entries whose hash was already taken by another address.
    spill: Vec<u32>,
}

impl AddressIndex {
    pub(crate) fn with_capacity(n: usize) -> AddressIndex {
        AddressIndex {
            map: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            spill: Vec::new(),
        }
    }

    /// Adds `address` as entry `idx`; returns the entry already there if the address (ignoring case)
    /// is known. `address_of` reads the address of an existing entry.
    pub fn insert<'a>(
        &mut self,
        address: &str,
        idx: u32,
        address_of: impl Fn(u32) -> &'a str,
    ) -> Option<u32> {
        if let Some(existing) = self.get(address, &address_of) {
            return Some(existing);
        }
        match self.map.entry(key(address)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(idx);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.spill.push(idx),
        }
        None
    }

    pub fn get<'a>(&self, address: &str, address_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        if let Some(&i) = self.map.get(&key(address))
            && address_of(i).eq_ignore_ascii_case(address)
        {
            return Some(i);
        }
        self.spill
            .iter()
            .copied()
            .find(|&i| address_of(i).eq_ignore_ascii_case(address))
    }

    /// About how many bytes the table holds on the heap (buckets of key, entry and control byte).
    pub fn heap_bytes(&self) -> usize {
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<(u64, u32)>() + 1) + self.spill.capacity() * 4
    }

    pub fn len(&self) -> usize {
        self.map.len() + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_collision_safe() {
        let addrs = ["Alice@Contoso.com", "bob@contoso.com", "carol@contoso.com"];
        let mut index = AddressIndex::default();
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(index.insert(a, i as u32, |j| addrs[j as usize]), None);
        }
        assert_eq!(
            index.get("alice@contoso.COM", |j| addrs[j as usize]),
            Some(0)
        );
        assert_eq!(
            index.insert("BOB@contoso.com", 9, |j| addrs[j as usize]),
            Some(1)
        );
        assert_eq!(index.get("dave@contoso.com", |j| addrs[j as usize]), None);

        // Force a collision: two different addresses under one hash key land apart.
        let mut index = AddressIndex::default();
        index.map.insert(key("x@y.org"), 0);
        let table = ["bob@contoso.com", "x@y.org"];
        assert_eq!(
            index.get("x@y.org", |j| table[j as usize]),
            None,
            "a hit must match the address"
        );
        index.spill.push(1);
        assert_eq!(index.get("X@Y.org", |j| table[j as usize]), Some(1));
        assert_eq!(index.len(), 2);
    }
}
