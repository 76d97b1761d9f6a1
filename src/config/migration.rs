//! `[migration]`: where the service pulls mailboxes from and where their mail goes.

use serde::Deserialize;

#[derive(Debug, Clone, Default)]
pub struct Migration {
    pub remote_host_name: String,
    pub target_delivery_domain: String,
    pub source_endpoint: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMigration {
    remote_host_name: Option<String>,
    target_delivery_domain: Option<String>,
    source_endpoint: Option<String>,
}

impl Migration {
    pub(super) fn from_raw(raw: RawMigration) -> Migration {
        Migration {
            remote_host_name: raw.remote_host_name.unwrap_or_default(),
            target_delivery_domain: raw.target_delivery_domain.unwrap_or_default(),
            source_endpoint: raw.source_endpoint,
        }
    }
}
