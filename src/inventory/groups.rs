//! Affinity groups: mailboxes joined by delegate permissions must move in the same wave, so a group is a
//! connected component of the delegation graph. Service accounts (more edges than a threshold) are
//! left out of grouping, or one help-desk account would pull the whole estate into one group.

use super::Inventory;

/// Union-find with path halving and union by size.
struct Components {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Components {
    fn new(n: usize) -> Self {
        Components {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

/// Fills `inv.group_of` and `inv.service_accounts` from `inv.delegations`.
/// Group ids are dense and numbered in order of each group's first mailbox, so the same inventory
/// always gives the same ids.
pub fn assign(inv: &mut Inventory, service_account_threshold: u32) {
    let n = inv.mailboxes.len();
    let mut degree = vec![0u32; n];
    for &(a, b) in &inv.delegations {
        degree[a as usize] += 1;
        degree[b as usize] += 1;
    }
    inv.service_accounts = (0..n as u32)
        .filter(|&i| degree[i as usize] > service_account_threshold)
        .collect();
    let grouped = |i: u32| {
        degree[i as usize] <= service_account_threshold && !inv.mailboxes[i as usize].exclude
    };
    let mut uf = Components::new(n);
    for &(a, b) in &inv.delegations {
        if grouped(a) && grouped(b) {
            uf.union(a, b);
        }
    }
    let mut dense = vec![u32::MAX; n];
    let mut next = 0u32;
    inv.group_of = (0..n as u32)
        .map(|i| {
            let root = uf.find(i) as usize;
            if dense[root] == u32::MAX {
                dense[root] = next;
                next += 1;
            }
            dense[root]
        })
        .collect();
}

/// Sizes of every group, indexed by group id.
pub fn sizes(group_of: &[u32]) -> Vec<u32> {
    let groups = group_of.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let mut sizes = vec![0u32; groups];
    for &g in group_of {
        sizes[g as usize] += 1;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Mailbox;

    fn inv(n: usize, edges: &[(u32, u32)]) -> Inventory {
        Inventory {
            mailboxes: (0..n)
                .map(|i| Mailbox {
                    address: format!("m{i}@x.org"),
                    display_name: None,
                    size_bytes: 0,
                    item_count: 0,
                    organisation: None,
                    source_database: None,
                    priority: None,
                    pilot: false,
                    exclude: false,
                    has_archive: false,
                })
                .collect(),
            delegations: edges.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn components_are_groups() {
        let mut i = inv(6, &[(0, 1), (1, 2), (4, 5)]);
        assign(&mut i, 50);
        assert_eq!(i.group_of, vec![0, 0, 0, 1, 2, 2]);
        assert_eq!(sizes(&i.group_of), vec![3, 1, 2]);
        assert!(i.service_accounts.is_empty());
    }

    #[test]
    fn service_accounts_do_not_join_groups() {
        // Mailbox 0 is delegate on 1..=4; with threshold 3 it is a service account.
        let mut i = inv(6, &[(0, 1), (0, 2), (0, 3), (0, 4), (4, 5)]);
        assign(&mut i, 3);
        assert_eq!(i.service_accounts, vec![0]);
        assert_eq!(sizes(&i.group_of).iter().max(), Some(&2));
        assert_eq!(i.group_of[4], i.group_of[5]);
        assert_ne!(i.group_of[1], i.group_of[2]);
    }

    #[test]
    fn excluded_mailboxes_do_not_bridge_groups() {
        let mut i = inv(3, &[(0, 1), (1, 2)]);
        i.mailboxes[1].exclude = true;
        assign(&mut i, 50);
        assert_ne!(i.group_of[0], i.group_of[2]);
    }
}
