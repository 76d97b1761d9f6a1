//! The directory of the in-process simulator (for `demo` and engine tests).

use std::sync::Arc;

use super::{Directory, Res, Sku, User, classify, mail_body};
use crate::sim::{ServiceFault, Simulator};

pub struct LocalDirectory {
    sim: Arc<Simulator>,
}

impl LocalDirectory {
    pub fn new(sim: Arc<Simulator>) -> LocalDirectory {
        LocalDirectory { sim }
    }
}

fn fault(f: ServiceFault) -> super::ServiceError {
    classify(
        f.status,
        f.body.as_ref(),
        f.retry_after.map(|s| s.to_string()).as_deref(),
    )
}

impl Directory for LocalDirectory {
    async fn list_users(&self) -> Res<Vec<User>> {
        let mut users = Vec::new();
        let mut skip = 0;
        loop {
            self.sim.graph_call().map_err(fault)?;
            let (page, more) = self.sim.with_directory(|d| d.users_page(skip, 999));
            skip += page.len();
            users.extend(page.iter().map(User::from_json));
            if !more {
                return Ok(users);
            }
        }
    }

    async fn mailbox_usage_report(&self, period: &str) -> Res<Vec<u8>> {
        self.sim.graph_call().map_err(fault)?;
        let token = self
            .sim
            .with_directory(|d| d.prepare_report(period))
            .map_err(fault)?;
        let csv = self
            .sim
            .with_directory(|d| d.download(&token, false))
            .unwrap_or_default();
        Ok(csv.into_bytes())
    }

    async fn subscribed_skus(&self) -> Res<Vec<Sku>> {
        self.sim.graph_call().map_err(fault)?;
        let v = self.sim.with_directory(|d| d.subscribed_skus());
        Ok(v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Sku::from_json)
            .collect())
    }

    async fn get_user(&self, user: &str) -> Res<User> {
        self.sim.graph_call().map_err(fault)?;
        self.sim
            .with_directory(|d| d.get_user(user))
            .map(|v| User::from_json(&v))
            .map_err(fault)
    }

    async fn assign_licence(&self, user: &str, sku_id: &str) -> Res<()> {
        self.sim.graph_call().map_err(fault)?;
        let body = serde_json::json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []});
        self.sim
            .with_directory(|d| d.assign_license(user, &body))
            .map(|_| ())
            .map_err(fault)
    }

    async fn send_mail(&self, sender: &str, to: &[String], subject: &str, body: &str) -> Res<()> {
        self.sim.graph_call().map_err(fault)?;
        let now = self.sim.clock().now();
        self.sim
            .with_directory(|d| d.send_mail(now, sender, &mail_body(to, subject, body)))
            .map_err(fault)
    }
}
