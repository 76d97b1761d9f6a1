//! The simulated Microsoft Graph directory: users, the mailbox usage report, licences and mail.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Profile, ServiceFault};
use crate::inventory::synth;

/// Office 365 E3 (ENTERPRISEPACK).
pub(crate) const E3_SKU: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
pub(crate) const EXCHANGE_S_ENTERPRISE: &str = "efb87545-963c-4e0d-99df-69c6916d9eb0";

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub(crate) enabled: bool,
    pub licences: Vec<String>,
    pub size: u64,
    pub(crate) items: u64,
    pub(crate) has_archive: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DirectoryStats {
    pub throttled: u64,
    pub report_downloads: u64,
    /// Downloads of the report CSV that carried an Authorization header (a client must not send one).
    pub report_downloads_with_authorization: u64,
    pub(crate) licences_assigned: u64,
    pub(crate) mails_sent: u64,
}

/// A message the simulated Graph accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SentMail {
    pub at: Timestamp,
    pub sender: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub html: bool,
    pub reply_to: Option<String>,
}

/// The sending mailbox the simulator keeps besides its users, by number (1-based).
pub fn sender_address(n: u32) -> String {
    format!("notices{n:02}@contoso.com")
}

pub struct Directory {
    pub users: Vec<User>,
    reports: HashMap<String, String>,
    /// Per sender: when each message of the last day went, and to how many.
    sends: HashMap<String, VecDeque<(Timestamp, u32)>>,
    conceal: bool,
    mail_per_minute: u32,
    mail_recipients_per_day: u32,
    senders: std::collections::HashSet<String>,
    refresh_date: jiff::civil::Date,
    pub sent: Vec<SentMail>,
    pub stats: DirectoryStats,
    /// Seats of the Exchange Online SKU: those in use at the start and the spare ones.
    seats: u64,
    /// Users from this index on have no cloud object yet.
    synced: usize,
}

fn graph_error(status: u16, code: &str, message: &str) -> ServiceFault {
    ServiceFault {
        status,
        body: Some(json!({"error": {"code": code, "message": message,
            "innerError": {"request-id": uuid::Uuid::new_v4().to_string()}}})),
        retry_after: None,
    }
}

fn hashed(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

impl Directory {
    pub fn new(profile: &Profile, now: Timestamp) -> Directory {
        let estate = synth::generate(&synth::EstateSpec::new(
            profile.directory_users,
            profile.directory_seed,
        ));
        let users = estate
            .mailboxes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let n = (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
                    ^ profile.directory_seed as u128;
                let b = n.to_be_bytes();
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                User {
                    id: format!(
                        "{}-{}-{}-{}-{}",
                        &h[0..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..32]
                    ),
                    display_name: format!("User {i:07}"),
                    upn: m.address.clone(),
                    enabled: true,
                    // One user in thirty has no Exchange licence yet.
                    licences: if i % 30 == 29 {
                        vec![]
                    } else {
                        vec![E3_SKU.to_string()]
                    },
                    size: m.size_bytes,
                    items: m.item_count,
                    has_archive: m.has_archive,
                    deleted: i % 100 == 99,
                }
            })
            .collect();
        let mut d = Directory {
            users,
            reports: HashMap::new(),
            sends: HashMap::new(),
            conceal: profile.conceal_names,
            mail_per_minute: profile.mail_per_minute,
            mail_recipients_per_day: profile.mail_recipients_per_day,
            senders: (1..=profile.mail_senders).map(sender_address).collect(),
            refresh_date: now.to_zoned(jiff::tz::TimeZone::UTC).date(),
            sent: Vec::new(),
            stats: DirectoryStats::default(),
            seats: 0,
            synced: profile
                .directory_users
                .saturating_sub(profile.unsynced_users),
        };
        d.seats = d.consumed() + profile.spare_licences;
        d
    }

    fn consumed(&self) -> u64 {
        self.users
            .iter()
            .filter(|u| u.licences.iter().any(|l| l == E3_SKU))
            .count() as u64
    }

    fn user_json(u: &User) -> Value {
        json!({
            "id": u.id,
            "userPrincipalName": u.upn,
            "mail": u.upn,
            "accountEnabled": u.enabled,
            "assignedLicenses": u.licences.iter().map(|s| json!({"skuId": s, "disabledPlans": []})).collect::<Vec<_>>(),
        })
    }

    /// `GET /v1.0/users` page.
    pub(crate) fn users_page(&self, skip: usize, top: usize) -> (Vec<Value>, bool) {
        let live: Vec<&User> = self.users[..self.synced.min(self.users.len())]
            .iter()
            .filter(|u| !u.deleted)
            .collect();
        let page = live
            .iter()
            .skip(skip)
            .take(top)
            .map(|u| Self::user_json(u))
            .collect();
        (page, skip + top < live.len())
    }

    /// Builds the mailbox usage report and returns the download token it is kept under.
    pub(crate) fn prepare_report(&mut self, period: &str) -> Result<String, ServiceFault> {
        let days = match period {
            "D7" => 7,
            "D30" => 30,
            "D90" => 90,
            "D180" => 180,
            _ => {
                return Err(graph_error(
                    400,
                    "BadRequest",
                    &format!("Invalid period '{period}'. Valid values are D7, D30, D90 and D180."),
                ));
            }
        };
        let mut csv = String::from(
            "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period\r\n",
        );
        for u in &self.users {
            let (upn, name) = if self.conceal {
                (hashed(&u.upn), hashed(&u.display_name))
            } else {
                (u.upn.clone(), u.display_name.clone())
            };
            csv.push_str(&format!(
                "{},{upn},{name},{},{},2019-03-01,{},{},{},52613349376,53687091200,53687091200,{},{},32212254720,{},{days}\r\n",
                self.refresh_date,
                if u.deleted { "True" } else { "False" },
                if u.deleted { "2026-10-01" } else { "" },
                self.refresh_date,
                u.items,
                u.size,
                u.items / 50,
                u.size / 100,
                if u.has_archive { "True" } else { "False" },
            ));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.reports.insert(token.clone(), csv);
        Ok(token)
    }

    /// The report behind a download token (one download each, like the real short-lived URL).
    pub(crate) fn download(&mut self, token: &str, had_authorization: bool) -> Option<String> {
        let csv = self.reports.remove(token)?;
        self.stats.report_downloads += 1;
        if had_authorization {
            self.stats.report_downloads_with_authorization += 1;
        }
        Some(csv)
    }

    pub fn subscribed_skus(&self) -> Value {
        let consumed = self.consumed();
        json!({"value": [{
            "skuId": E3_SKU,
            "skuPartNumber": "ENTERPRISEPACK",
            "consumedUnits": consumed,
            "prepaidUnits": {"enabled": self.seats, "suspended": 0, "warning": 0},
            "servicePlans": [
                {"servicePlanId": EXCHANGE_S_ENTERPRISE, "servicePlanName": "EXCHANGE_S_ENTERPRISE", "provisioningStatus": "Success", "appliesTo": "User"},
                {"servicePlanId": "5dbe027f-2339-4123-9542-606e4d348a72", "servicePlanName": "SHAREPOINTENTERPRISE", "provisioningStatus": "Success", "appliesTo": "User"}
            ]
        }]})
    }

    fn find_user(&mut self, key: &str) -> Option<&mut User> {
        let synced = self.synced.min(self.users.len());
        self.users[..synced]
            .iter_mut()
            .find(|u| !u.deleted && (u.id == key || u.upn.eq_ignore_ascii_case(key)))
    }

    /// `GET /v1.0/users/{id|upn}`.
    pub(crate) fn get_user(&mut self, key: &str) -> Result<Value, ServiceFault> {
        self.find_user(key).map(|u| Self::user_json(u)).ok_or_else(|| {
            graph_error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."))
        })
    }

    /// `POST /v1.0/users/{id|upn}/assignLicense`.
    pub(crate) fn assign_license(
        &mut self,
        key: &str,
        body: &Value,
    ) -> Result<Value, ServiceFault> {
        let add: Vec<String> = body["addLicenses"]
            .as_array()
            .ok_or_else(|| {
                graph_error(
                    400,
                    "Request_BadRequest",
                    "The addLicenses property is required.",
                )
            })?
            .iter()
            .filter_map(|l| l["skuId"].as_str().map(str::to_string))
            .collect();
        if let Some(bad) = add.iter().find(|s| s.as_str() != E3_SKU) {
            return Err(graph_error(
                400,
                "Request_BadRequest",
                &format!("License {bad} does not correspond to a valid company License."),
            ));
        }
        let (consumed, seats) = (self.consumed(), self.seats);
        let user = self.find_user(key).ok_or_else(|| {
            graph_error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."))
        })?;
        if add.iter().any(|s| !user.licences.contains(s)) && consumed >= seats {
            return Err(graph_error(
                400,
                "Request_BadRequest",
                &format!("Subscription with SKU {E3_SKU} does not have any available licenses."),
            ));
        }
        for sku in add {
            if !user.licences.contains(&sku) {
                user.licences.push(sku);
            }
        }
        let v = Self::user_json(user);
        self.stats.licences_assigned += 1;
        Ok(v)
    }

    /// `POST /v1.0/users/{sender}/sendMail`: per sender, 30 messages a minute and 10,000 recipients
    /// a rolling day, as Exchange Online allows; over either, 429 with Retry-After.
    pub fn send_mail(
        &mut self,
        now: Timestamp,
        sender: &str,
        body: &Value,
    ) -> Result<(), ServiceFault> {
        let m = &body["message"];
        let address = |v: &Value| v["emailAddress"]["address"].as_str().map(str::to_string);
        let to: Vec<String> = m["toRecipients"]
            .as_array()
            .map(|r| r.iter().filter_map(address).collect())
            .unwrap_or_default();
        if to.is_empty() || to.iter().any(|a| !a.contains('@')) {
            return Err(graph_error(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid.",
            ));
        }
        let key = sender.to_ascii_lowercase();
        if !self.senders.contains(&key) && self.find_user(sender).is_none() {
            return Err(graph_error(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{sender}' is invalid."),
            ));
        }
        let window = self.sends.entry(key).or_default();
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= SignedDuration::from_hours(24))
        {
            window.pop_front();
        }
        let minute_ago = now - SignedDuration::from_mins(1);
        let in_minute: Vec<Timestamp> = window
            .iter()
            .rev()
            .take_while(|(t, _)| *t > minute_ago)
            .map(|(t, _)| *t)
            .collect();
        let day: u64 = window.iter().map(|(_, n)| *n as u64).sum();
        let throttled = |wait: f64, message: &str| {
            let mut fault = graph_error(429, "ApplicationThrottled", message);
            fault.retry_after = Some(wait.max(0.1));
            fault
        };
        if in_minute.len() as u32 >= self.mail_per_minute {
            let oldest = *in_minute.last().expect("non-empty minute");
            self.stats.throttled += 1;
            return Err(throttled(
                60.0 - now.duration_since(oldest).as_secs_f64(),
                "Application is over its MailboxConcurrency limit.",
            ));
        }
        if day + to.len() as u64 > self.mail_recipients_per_day as u64 {
            let oldest = window.front().map_or(now, |(t, _)| *t);
            self.stats.throttled += 1;
            return Err(throttled(
                86_400.0 - now.duration_since(oldest).as_secs_f64(),
                "The sender has exceeded its recipient rate limit for the day.",
            ));
        }
        window.push_back((now, to.len() as u32));
        self.sent.push(SentMail {
            at: now,
            sender: sender.to_ascii_lowercase(),
            to,
            subject: m["subject"].as_str().unwrap_or("").to_string(),
            body: m["body"]["content"].as_str().unwrap_or("").to_string(),
            html: m["body"]["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("html")),
            reply_to: m["replyTo"]
                .as_array()
                .and_then(|r| r.first())
                .and_then(address),
        });
        self.stats.mails_sent += 1;
        Ok(())
    }
}
