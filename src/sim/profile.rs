//! Every knob of the simulated service, with defaults that behave like a busy commercial tenant.
//! `mailwave sim serve --profile FILE` reads these from TOML; unknown keys are refused.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    // --- capacity -------------------------------------------------------------------------------
    /// MaxConcurrentMigrations of the migration endpoint: moves copying at once.
    pub max_concurrent_migrations: u32,
    /// MaxConcurrentIncrementalSyncs, as the endpoint reports it.
    pub max_concurrent_incremental_syncs: u32,
    /// Hybrid throughput shared by the moves copying at once, GB (10^9 bytes) an hour.
    pub throughput_gb_per_hour: f64,
    /// Fixed cost of every move (job pickup, folder hierarchy), minutes.
    pub base_move_minutes: f64,
    /// Cost per item, seconds.
    pub seconds_per_item: f64,
    /// Cut-overs in progress at once (the service's finalisation capacity).
    pub max_concurrent_completions: u32,
    /// Mean time to finalise one cut-over, minutes.
    pub finalization_minutes: f64,
    // --- behaviour at the edges ------------------------------------------------------------------
    /// Share of moves that stall for a while (StalledDueToTarget_*).
    pub stall_share: f64,
    pub stall_minutes: f64,
    /// What a stall is put down to in the statistics (`TotalStalledDueTo...`): relative weights.
    pub stall_causes: StallCauses,
    /// Source servers differ in speed: each copies at 1 ± this share of the usual rate (fixed per
    /// source database, so `analyze --by source` finds the slow ones).
    pub source_speed_spread: f64,
    /// Share of moves that fail with a transient error part-way (resumable).
    pub transient_failure_share: f64,
    /// Share of moves that fail permanently.
    pub permanent_failure_share: f64,
    /// Data Consistency Score shares: Investigate waits for approval; Poor cannot complete.
    pub dcs_investigate_share: f64,
    pub dcs_poor_share: f64,
    /// Shares of completions with warnings or skipped items.
    pub completed_with_warning_share: f64,
    pub completed_with_skipped_items_share: f64,
    /// How long a new move request is invisible to reads (directory replication), seconds.
    pub replication_lag_seconds: f64,
    /// Exchange request budget: sustained requests a second and burst, per tenant.
    pub exchange_requests_per_second: f64,
    pub exchange_burst: u32,
    /// Graph request budget.
    pub graph_requests_per_second: f64,
    pub graph_burst: u32,
    /// Share of Exchange calls answered 503/504 (StorageTransientException).
    pub injected_5xx_share: f64,
    /// Largest page the service returns whatever the client asks (odata.maxpagesize).
    pub max_page_size: usize,
    // --- identity and directory -----------------------------------------------------------------
    pub token_lifetime_seconds: u64,
    /// The client secret the token endpoint accepts; unset accepts any non-empty secret.
    pub client_secret: Option<String>,
    /// PEM certificate whose key signs client assertions; unset refuses assertions.
    pub certificate: Option<std::path::PathBuf>,
    /// Users in the simulated directory (and rows in the mailbox usage report).
    pub directory_users: usize,
    /// Seed of the simulated directory's estate.
    pub directory_seed: u64,
    /// Report concealed (hashed) names, as when `displayConcealedNames` is true.
    pub conceal_names: bool,
    /// Messages a sender mailbox may send a minute (Exchange Online: 30).
    pub mail_per_minute: u32,
    /// Recipients a sender mailbox may reach in a rolling day (Exchange Online: 10,000).
    pub mail_recipients_per_day: u32,
    /// How long `sendMail` takes to answer, after the message is accepted (a client killed in
    /// that time does not know it went).
    pub mail_latency_ms: u64,
    /// Sending mailboxes besides the users: `notices01@contoso.com` to `noticesNN@contoso.com`.
    pub mail_senders: u32,
    /// Free seats of the Exchange Online licence beyond those in use.
    pub spare_licences: u64,
    /// The last N users of the directory have no cloud object yet (directory sync has not
    /// reached them): absent from `/v1.0/users`, still in the usage report.
    pub unsynced_users: usize,
    /// Cmdlets outside the app's role: answered 403 with an empty body, as the service does.
    pub forbidden_cmdlets: Vec<String>,
    /// Text put before every failure message and source server name the service answers with:
    /// to rehearse hostile text from outside (terminal escapes, markup, formulas).
    pub planted_text: String,
}

/// Relative weights of the stall causes, by the names in
/// [`STALL_CAUSES`](crate::exchange::figures::STALL_CAUSES).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StallCauses {
    pub content_indexing: f64,
    pub high_availability: f64,
    pub mailbox_locked: f64,
    pub read_throttle: f64,
    pub write_throttle: f64,
    pub read_cpu: f64,
    pub write_cpu: f64,
    pub read_unknown: f64,
    pub write_unknown: f64,
}

impl Default for StallCauses {
    /// Target-side throttling and replication dominate in a busy tenant; source-side stalls are the
    /// on-premises servers' share.
    fn default() -> Self {
        StallCauses {
            content_indexing: 1.0,
            high_availability: 2.0,
            mailbox_locked: 0.5,
            read_throttle: 1.5,
            write_throttle: 3.0,
            read_cpu: 0.5,
            write_cpu: 1.0,
            read_unknown: 0.5,
            write_unknown: 0.5,
        }
    }
}

impl StallCauses {
    /// The weights in the order of `STALL_CAUSES`.
    pub fn weights(&self) -> [f64; 9] {
        [
            self.content_indexing,
            self.high_availability,
            self.mailbox_locked,
            self.read_throttle,
            self.write_throttle,
            self.read_cpu,
            self.write_cpu,
            self.read_unknown,
            self.write_unknown,
        ]
    }

    /// The cause drawn for `u` in [0, 1).
    pub fn pick(&self, u: f64) -> u8 {
        let w = self.weights();
        let total: f64 = w.iter().map(|x| x.max(0.0)).sum();
        if total <= 0.0 {
            return 4;
        }
        let mut left = u * total;
        for (i, x) in w.iter().enumerate() {
            left -= x.max(0.0);
            if left < 0.0 {
                return i as u8;
            }
        }
        8
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            max_concurrent_migrations: 100,
            max_concurrent_incremental_syncs: 20,
            throughput_gb_per_hour: 100.0,
            base_move_minutes: 20.0,
            seconds_per_item: 0.01,
            max_concurrent_completions: 2_000,
            finalization_minutes: 8.0,
            stall_share: 0.05,
            stall_minutes: 45.0,
            stall_causes: StallCauses::default(),
            source_speed_spread: 0.25,
            transient_failure_share: 0.02,
            permanent_failure_share: 0.002,
            dcs_investigate_share: 0.01,
            dcs_poor_share: 0.001,
            completed_with_warning_share: 0.01,
            completed_with_skipped_items_share: 0.005,
            replication_lag_seconds: 30.0,
            exchange_requests_per_second: 20.0,
            exchange_burst: 60,
            graph_requests_per_second: 20.0,
            graph_burst: 60,
            injected_5xx_share: 0.002,
            max_page_size: 1_000,
            token_lifetime_seconds: 3_599,
            client_secret: None,
            certificate: None,
            directory_users: 2_000,
            directory_seed: 7,
            conceal_names: false,
            mail_per_minute: 30,
            mail_recipients_per_day: 10_000,
            mail_senders: 50,
            mail_latency_ms: 0,
            spare_licences: 500,
            unsynced_users: 0,
            forbidden_cmdlets: Vec::new(),
            planted_text: String::new(),
        }
    }
}

impl Profile {
    /// A service with no failures, no throttling and room for everything: for measuring mailwave.
    pub fn ample() -> Profile {
        Profile {
            max_concurrent_migrations: 1_000_000,
            throughput_gb_per_hour: 1e9,
            max_concurrent_completions: 1_000_000,
            exchange_requests_per_second: 1e9,
            exchange_burst: 1_000_000,
            replication_lag_seconds: 0.0,
            ..Profile::default()
        }
        .without_failures()
    }

    /// The same service where every move goes through cleanly: no stalls, failures, injected
    /// faults, data-consistency verdicts or completions with warnings.
    pub fn without_failures(self) -> Profile {
        Profile {
            stall_share: 0.0,
            transient_failure_share: 0.0,
            permanent_failure_share: 0.0,
            dcs_investigate_share: 0.0,
            dcs_poor_share: 0.0,
            completed_with_warning_share: 0.0,
            completed_with_skipped_items_share: 0.0,
            injected_5xx_share: 0.0,
            ..self
        }
    }

    pub fn load(path: &std::path::Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| crate::config::line_of(&text, s.start))
                .unwrap_or(1);
            format!("{}, line {line}: {}", path.display(), e.message().trim())
        })
    }
}
