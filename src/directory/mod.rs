//! Microsoft Graph, behind [`Directory`]: users, the mailbox usage report, Exchange Online licences,
//! and notification mail. [`graph::GraphDirectory`] talks to Graph (graph-rs-sdk).

pub mod graph;

use std::future::Future;

use serde_json::Value;

pub use crate::exchange::ServiceError;

/// Exchange Online service plans: EXCHANGE_S_ENTERPRISE and EXCHANGE_S_STANDARD.
pub(crate) const EXCHANGE_PLANS: [&str; 2] = [
    "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub(crate) account_enabled: bool,
    /// (skuId, disabled service plan ids)
    pub licences: Vec<(String, Vec<String>)>,
}

/// A name Graph gives, cleaned here once (see `crate::text`).
fn name(v: &Value, max: usize) -> Option<String> {
    v.as_str().map(|s| crate::text::clean(s, max).into_owned())
}

impl User {
    pub fn from_json(v: &Value) -> User {
        use crate::text::{ADDRESS, NAME};
        User {
            id: name(&v["id"], NAME).unwrap_or_default(),
            user_principal_name: name(&v["userPrincipalName"], ADDRESS).unwrap_or_default(),
            mail: name(&v["mail"], ADDRESS),
            account_enabled: v["accountEnabled"].as_bool().unwrap_or(true),
            licences: v["assignedLicenses"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| {
                            (
                                l["skuId"].as_str().unwrap_or("").to_string(),
                                l["disabledPlans"]
                                    .as_array()
                                    .map(|d| {
                                        d.iter()
                                            .filter_map(|x| x.as_str().map(str::to_string))
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A subscribed SKU and the service plans in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku {
    pub sku_id: String,
    pub(crate) part_number: String,
    pub(crate) enabled: u64,
    pub(crate) consumed: u64,
    pub(crate) service_plans: Vec<String>,
}

impl Sku {
    pub fn from_json(v: &Value) -> Sku {
        Sku {
            sku_id: name(&v["skuId"], crate::text::NAME).unwrap_or_default(),
            part_number: name(&v["skuPartNumber"], crate::text::NAME).unwrap_or_default(),
            enabled: v["prepaidUnits"]["enabled"].as_u64().unwrap_or(0),
            consumed: v["consumedUnits"].as_u64().unwrap_or(0),
            service_plans: v["servicePlans"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|x| x["servicePlanId"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn includes_exchange(&self) -> bool {
        self.service_plans
            .iter()
            .any(|p| EXCHANGE_PLANS.contains(&p.as_str()))
    }
}

/// Whether `user` holds a licence whose SKU carries an Exchange Online plan that is not disabled.
pub fn has_exchange_licence(user: &User, skus: &[Sku]) -> bool {
    user.licences.iter().any(|(sku_id, disabled)| {
        skus.iter().any(|s| {
            &s.sku_id == sku_id
                && s.service_plans
                    .iter()
                    .any(|p| EXCHANGE_PLANS.contains(&p.as_str()) && !disabled.contains(p))
        })
    })
}

type Res<T> = Result<T, ServiceError>;

pub trait Directory: Send + Sync + 'static {
    /// Every user (all pages).
    fn list_users(&self) -> impl Future<Output = Res<Vec<User>>> + Send;
    /// The mailbox usage report CSV for `period` (D7, D30, D90, D180), written to `to` as it
    /// comes; returns its size.
    fn mailbox_usage_report(
        &self,
        period: &str,
        to: &mut (dyn std::io::Write + Send),
    ) -> impl Future<Output = Res<u64>> + Send;
    fn subscribed_skus(&self) -> impl Future<Output = Res<Vec<Sku>>> + Send;
    fn get_user(&self, user: &str) -> impl Future<Output = Res<User>> + Send;
    fn assign_licence(&self, user: &str, sku_id: &str) -> impl Future<Output = Res<()>> + Send;
    /// Sends `message` as `sender` (a mailbox the app may send as).
    fn send_mail(&self, sender: &str, message: &Message) -> impl Future<Output = Res<()>> + Send;
}

/// One request's answer inside a Graph `$batch`: its status, `Retry-After` and body.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAnswer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl BatchAnswer {
    /// The answer as a result, classified like any Graph answer.
    pub fn result(&self) -> Res<&Value> {
        if (200..300).contains(&self.status) {
            match self.body.get("error") {
                Some(e) => Err(graph::wrong_answer(
                    "$batch",
                    format_args!(
                        "an error in a success answer: {}",
                        e["message"].as_str().unwrap_or("(no message)")
                    ),
                )),
                None => Ok(&self.body),
            }
        } else {
            Err(classify(
                self.status,
                Some(&self.body),
                self.retry_after.as_deref(),
            ))
        }
    }
}

/// Graph requests `$batch` carries at once.
pub const BATCH: usize = 20;

type BoxFut<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Users and licences for the run's licence checks, behind a trait object (as [`Mailer`]).
pub trait Licensing: Send + Sync + 'static {
    /// The users (by principal name), [`BATCH`] to a `$batch`, one answer each, in order.
    fn users<'a>(&'a self, upns: &'a [String]) -> BoxFut<'a, Res<Vec<BatchAnswer>>>;
    fn skus(&self) -> BoxFut<'_, Res<Vec<Sku>>>;
    /// Assigns `sku_id` to each user, [`BATCH`] to a `$batch`, one answer each, in order.
    fn assign<'a>(
        &'a self,
        upns: &'a [String],
        sku_id: &'a str,
    ) -> BoxFut<'a, Res<Vec<BatchAnswer>>>;
}

/// A message to send through Graph `sendMail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The body is html (else plain text).
    pub html: bool,
    pub reply_to: Option<String>,
}

/// Sends mail for the run's notices, behind a trait object so the run session need not know
/// which directory carries it.
pub trait Mailer: Send + Sync + 'static {
    fn send<'a>(
        &'a self,
        sender: &'a str,
        message: &'a Message,
    ) -> std::pin::Pin<Box<dyn Future<Output = Res<()>> + Send + 'a>>;
}

impl<D: Directory> Mailer for D {
    fn send<'a>(
        &'a self,
        sender: &'a str,
        message: &'a Message,
    ) -> std::pin::Pin<Box<dyn Future<Output = Res<()>> + Send + 'a>> {
        Box::pin(self.send_mail(sender, message))
    }
}

/// Checks a user's Exchange Online licence and assigns `sku_id` when there is none.
/// Returns whether a licence was assigned.
pub async fn ensure_exchange_licence<D: Directory>(
    dir: &D,
    user: &str,
    skus: &[Sku],
    sku_id: &str,
) -> Res<bool> {
    let u = dir.get_user(user).await?;
    if has_exchange_licence(&u, skus) {
        return Ok(false);
    }
    dir.assign_licence(user, sku_id).await?;
    Ok(true)
}

/// The body of `sendMail`.
pub(crate) fn mail_body(m: &Message) -> Value {
    let address = |a: &String| serde_json::json!({"emailAddress": {"address": a}});
    let mut message = serde_json::json!({
        "subject": m.subject,
        "body": {"contentType": if m.html { "HTML" } else { "Text" }, "content": m.body},
        "toRecipients": m.to.iter().map(address).collect::<Vec<_>>(),
    });
    if let Some(r) = &m.reply_to {
        message["replyTo"] = serde_json::json!([address(r)]);
    }
    serde_json::json!({"message": message, "saveToSentItems": false})
}

/// Classifies a failed Graph answer. Its message is cleaned here, where it comes in.
pub fn classify(status: u16, body: Option<&Value>, retry_after: Option<&str>) -> ServiceError {
    let message = body
        .and_then(|b| b["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.map(|b| b.to_string()).unwrap_or_default());
    let message = crate::text::clean_owned(message, crate::text::MESSAGE);
    match status {
        429 => ServiceError::Throttled {
            retry_after: crate::exchange::error::retry_after(retry_after)
                .unwrap_or(std::time::Duration::from_secs(10)),
        },
        0 | 500..=599 => ServiceError::Transient { status, message },
        401 => ServiceError::Auth { message },
        403 => ServiceError::Permanent {
            status,
            message: format!("access denied (check the app's Graph permissions): {message}"),
        },
        404 => ServiceError::NotFound { message },
        400 => ServiceError::BadRequest { message },
        _ => ServiceError::Permanent { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn licence_needs_an_enabled_exchange_plan() {
        let skus = vec![Sku::from_json(
            &json!({"skuId": "E3", "servicePlans": [{"servicePlanId": EXCHANGE_PLANS[0]}]}),
        )];
        let user = |disabled: Vec<&str>| {
            User::from_json(&json!({"id": "1", "userPrincipalName": "a@b.org",
            "assignedLicenses": [{"skuId": "E3", "disabledPlans": disabled}]}))
        };
        assert!(has_exchange_licence(&user(vec![]), &skus));
        assert!(!has_exchange_licence(&user(vec![EXCHANGE_PLANS[0]]), &skus));
        assert!(!has_exchange_licence(
            &User::from_json(&json!({"id": "2"})),
            &skus
        ));
    }
}
