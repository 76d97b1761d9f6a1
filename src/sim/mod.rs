//! The simulator of Exchange Online, Microsoft Graph and Entra ID that `mailwave demo` and the tests run
//! against. One core ([`Simulator`]) answers in-process callers and, through [`http`], real HTTP
//! clients, with the request and response shapes, errors, limits and statuses of the real services.
//! Time runs on the shared [`Clock`]; the same seed replays the same run.

pub mod directory;
pub mod http;
pub mod identity;
pub mod moves;
mod profile;
pub mod transport;

use std::sync::Mutex;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::time::Clock;
use crate::time::limits::{self, Limiter};
pub use moves::{Answer, CallStats, Cursor, ServiceFault};
pub use profile::Profile;

struct Inner {
    moves: moves::MoveService,
    directory: directory::Directory,
    identity: identity::Identity,
    rng: ChaCha8Rng,
}

pub struct Simulator {
    clock: Clock,
    profile: Profile,
    inner: Mutex<Inner>,
    exchange_budget: Limiter,
    graph_budget: Limiter,
}

impl Simulator {
    pub fn new(profile: Profile, seed: u64, clock: Clock) -> Result<Simulator, String> {
        let now = clock.now();
        let identity = identity::Identity::new(&profile)?;
        Ok(Simulator {
            exchange_budget: limits::limiter(
                clock,
                profile.exchange_requests_per_second,
                profile.exchange_burst,
            ),
            graph_budget: limits::limiter(
                clock,
                profile.graph_requests_per_second,
                profile.graph_burst,
            ),
            inner: Mutex::new(Inner {
                moves: moves::MoveService::new(profile.clone(), seed, now),
                directory: directory::Directory::new(&profile, now),
                identity,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            }),
            clock,
            profile,
        })
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn throttled(&self, budget: &Limiter) -> Option<ServiceFault> {
        let wait = limits::try_take(budget, self.clock);
        if wait.is_zero() {
            return None;
        }
        // Retry-After in seconds, fractional as the service sends it.
        let seconds = (wait.as_secs_f64() * 10.0).ceil() / 10.0;
        Some(ServiceFault {
            status: 429,
            body: Some(serde_json::json!({"error": {"code": "TooManyRequests",
                "message": "Too many concurrent requests. Please retry after some time."}})),
            retry_after: Some(seconds.max(0.1)),
        })
    }

    /// One InvokeCommand call: request budget, injected faults, then the cmdlet.
    pub(crate) fn invoke(
        &self,
        cmdlet: &str,
        params: &Map<String, Value>,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Answer, ServiceFault> {
        let mut inner = self.lock();
        if let Some(fault) = self.throttled(&self.exchange_budget) {
            inner.moves.stats.throttled += 1;
            return Err(fault);
        }
        let roll: f64 = inner.rng.random();
        let fault = roll < self.profile.injected_5xx_share;
        // A 503 fails before the cmdlet runs; a 504 after it ran: the work is done, the answer lost.
        let gateway_timeout = fault && inner.rng.random_bool(0.5);
        if fault && !gateway_timeout {
            inner.moves.stats.injected_faults += 1;
            return Err(transient_fault(503));
        }
        let limit = limit.clamp(1, self.profile.max_page_size);
        let result = inner
            .moves
            .run(self.clock.now(), cmdlet, params, cursor, limit);
        if gateway_timeout {
            inner.moves.stats.injected_faults += 1;
            return Err(transient_fault(504));
        }
        result
    }

    /// Tells the service every mailbox of an inventory (sizes, items, source databases), as the real
    /// one knows them on-premises: moves then copy what the inventory says.
    pub fn know_inventory(&self, inv: &crate::inventory::Inventory) {
        let mut inner = self.lock();
        for m in &inv.mailboxes {
            inner.moves.know(
                &m.address,
                m.size_bytes,
                m.item_count.min(u32::MAX as u64) as u32,
                inv.database_name(m),
            );
        }
    }

    /// Read access to the simulated move service (tests, reports).
    pub fn with_moves<R>(&self, f: impl FnOnce(&mut moves::MoveService) -> R) -> R {
        let mut inner = self.lock();
        inner.moves.advance(self.clock.now());
        f(&mut inner.moves)
    }

    pub fn with_directory<R>(&self, f: impl FnOnce(&mut directory::Directory) -> R) -> R {
        f(&mut self.lock().directory)
    }

    pub fn with_identity<R>(&self, f: impl FnOnce(&mut identity::Identity) -> R) -> R {
        f(&mut self.lock().identity)
    }

    /// A Graph request's budget check.
    pub(crate) fn graph_call(&self) -> Result<(), ServiceFault> {
        match self.throttled(&self.graph_budget) {
            Some(fault) => {
                self.lock().directory.stats.throttled += 1;
                Err(fault)
            }
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> CallStats {
        self.lock().moves.stats.clone()
    }
}

fn transient_fault(status: u16) -> ServiceFault {
    moves::cmdlet_error(
        status,
        if status == 503 {
            "ServiceUnavailable"
        } else {
            "GatewayTimeout"
        },
        "Ex8C1F05",
        "Microsoft.Exchange.Data.Storage.StorageTransientException",
        "Cannot open mailbox. The server is busy; please try again later.",
    )
}
