//! Every answer that is not a success becomes one typed class. The client never decides what to do
//! about an error (retry, wait, give up): the engine does, by class.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// 429: wait `retry_after`, every worker on this API.
    #[error("throttled; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    /// 503, 504, a network failure, or one of the exceptions the service itself retries.
    #[error("transient service error ({status}): {message}")]
    Transient { status: u16, message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    /// A 404 for a request created moments ago: directory replication has not caught up.
    #[error("not yet replicated: {message}")]
    NotYetReplicated { message: String },
    /// New-MoveRequest for a mailbox that already has a request (pending, or completed).
    #[error("a move request already exists: {message}")]
    AlreadyExists { completed: bool, message: String },
    /// 401 after the one token renewal.
    #[error("not authorised: {message}")]
    Auth { message: String },
    /// 403 with an empty body: the cmdlet is unknown or outside the app's role.
    #[error(
        "permission denied for {cmdlet}: the cmdlet is unknown or outside the app's Exchange role"
    )]
    Permission { cmdlet: String },
    #[error("bad request: {message}")]
    BadRequest { message: String },
    /// A change refused because the request is completing or completed (its cut-over started).
    #[error("the request is completing or completed and can't be changed: {message}")]
    RequestCompleting { message: String },
    /// Not sent: the run is stopping (nothing happened on the service).
    #[error("not sent: the run is stopping")]
    NotSent,
    #[error("permanent service error ({status}): {message}")]
    Permanent { status: u16, message: String },
}

/// The exception names the ExchangeOnlineManagement module itself retries.
const RETRYABLE_EXCEPTIONS: [&str; 5] = [
    "DCOverloadedException",
    "SuitabilityDirectoryException",
    "ServerInMMException",
    "ADServerSettingsChangedException",
    "StorageTransientException",
];

/// The real reason of an error body: `error.details[0].message` shaped `ErrId|ExceptionType|Text`.
/// Returns (exception type, text); falls back to `error.message`. This is where the service's
/// error texts come in: both are cleaned here, once, for every output after.
pub fn reason(body: &Value) -> (String, String) {
    let (kind, text) = raw_reason(body);
    (
        crate::text::clean_owned(kind, crate::text::NAME),
        crate::text::clean_owned(text, crate::text::MESSAGE),
    )
}

fn raw_reason(body: &Value) -> (String, String) {
    let detail = body["error"]["details"][0]["message"].as_str();
    match detail {
        Some(d) => {
            let mut parts = d.splitn(3, '|');
            let (_id, kind, text) = (parts.next(), parts.next(), parts.next());
            match (kind, text) {
                (Some(kind), Some(text)) => (kind.to_string(), text.to_string()),
                _ => (String::new(), d.to_string()),
            }
        }
        None => (
            String::new(),
            body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string().chars().take(300).collect()),
        ),
    }
}

/// Parses `Retry-After` in seconds, fractions allowed (`"2.5"`).
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    let secs: f64 = header?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Classifies a failed InvokeCommand answer. `recently_created`: the identity was created so recently
/// that a 404 means replication lag, not absence.
pub fn classify(
    status: u16,
    body: Option<&Value>,
    retry_after_header: Option<&str>,
    cmdlet: &str,
    recently_created: bool,
) -> ServiceError {
    let (kind, text) = body.map(reason).unwrap_or_default();
    let message = if kind.is_empty() {
        text.clone()
    } else {
        format!("{text} ({})", short(&kind))
    };
    if status == 429 {
        return ServiceError::Throttled {
            retry_after: retry_after(retry_after_header).unwrap_or(Duration::from_secs(5)),
        };
    }
    if kind.contains("UserAlreadyBeingMigratedException")
        || text.contains("already has a pending request")
    {
        return ServiceError::AlreadyExists {
            completed: false,
            message,
        };
    }
    if text.contains("has a completed move request associated with it") {
        return ServiceError::AlreadyExists {
            completed: true,
            message,
        };
    }
    if RETRYABLE_EXCEPTIONS
        .iter()
        .any(|e| kind.contains(e) || text.contains(e))
        || matches!(status, 502..=504)
    {
        return ServiceError::Transient { status, message };
    }
    if kind.contains("CannotSetCompleting") {
        return ServiceError::RequestCompleting { message };
    }
    match status {
        401 => ServiceError::Auth { message },
        403 if body.is_none() => ServiceError::Permission {
            cmdlet: cmdlet.to_string(),
        },
        403 => ServiceError::Permanent { status, message },
        404 if recently_created => ServiceError::NotYetReplicated { message },
        404 => ServiceError::NotFound { message },
        400 => ServiceError::BadRequest { message },
        500..=599 => ServiceError::Transient { status, message },
        _ => ServiceError::Permanent { status, message },
    }
}

/// `Microsoft.Exchange.Foo.BarException` -> `BarException`.
fn short(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(kind: &str, text: &str) -> Value {
        json!({"error": {"code": "X", "message": "Error executing cmdlet",
            "details": [{"code": "Client", "target": "", "message": format!("Ex1|{kind}|{text}")}]}})
    }

    #[test]
    fn every_class() {
        let c =
            |s, b: Option<Value>, h, recent| classify(s, b.as_ref(), h, "New-MoveRequest", recent);
        assert_eq!(
            c(429, None, Some("2.5"), false),
            ServiceError::Throttled {
                retry_after: Duration::from_millis(2500)
            }
        );
        assert!(matches!(
            c(503, None, None, false),
            ServiceError::Transient { status: 503, .. }
        ));
        assert!(matches!(
            c(
                500,
                Some(body(
                    "Microsoft.Exchange.Data.Storage.StorageTransientException",
                    "busy"
                )),
                None,
                false
            ),
            ServiceError::Transient { .. }
        ));
        assert!(matches!(
            c(
                400,
                Some(body("x.DCOverloadedException", "busy")),
                None,
                false
            ),
            ServiceError::Transient { .. }
        ));
        let nf = body(
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            "couldn't be found",
        );
        assert!(matches!(
            c(404, Some(nf.clone()), None, false),
            ServiceError::NotFound { .. }
        ));
        assert!(matches!(
            c(404, Some(nf), None, true),
            ServiceError::NotYetReplicated { .. }
        ));
        assert!(matches!(
            c(
                400,
                Some(body(
                    "Microsoft.Exchange.Management.RecipientTasks.UserAlreadyBeingMigratedException",
                    "The user 'a@b.c' already has a pending request."
                )),
                None,
                false
            ),
            ServiceError::AlreadyExists {
                completed: false,
                ..
            }
        ));
        assert!(matches!(
            c(
                400,
                Some(body(
                    "x.MailboxReplicationPermanentException",
                    "Mailbox 'A' has a completed move request associated with it. Before..."
                )),
                None,
                false
            ),
            ServiceError::AlreadyExists {
                completed: true,
                ..
            }
        ));
        assert!(matches!(
            c(
                401,
                Some(json!({"error": {"message": "expired"}})),
                None,
                false
            ),
            ServiceError::Auth { .. }
        ));
        assert_eq!(
            c(403, None, None, false),
            ServiceError::Permission {
                cmdlet: "New-MoveRequest".into()
            }
        );
        assert!(matches!(
            c(
                400,
                Some(body(
                    "x.ParameterBindingException",
                    "A parameter cannot be found"
                )),
                None,
                false
            ),
            ServiceError::BadRequest { .. }
        ));
        assert!(matches!(
            c(
                400,
                Some(body(
                    "Microsoft.Exchange.MailboxReplicationService.CannotSetCompletingPermanentException",
                    "The move request for 'a@b.c' is completing or completed and can't be changed."
                )),
                None,
                false
            ),
            ServiceError::RequestCompleting { .. }
        ));
        assert!(matches!(
            c(
                409,
                Some(json!({"error": {"message": "conflict"}})),
                None,
                false
            ),
            ServiceError::Permanent { .. }
        ));
    }

    #[test]
    fn the_reason_is_clean_text() {
        let hostile = body(
            "x.\u{1b}]0;pwnedException",
            &format!("\u{1b}[2J\u{1b}[31mgone{}", "!".repeat(10_000)),
        );
        let e = classify(404, Some(&hostile), None, "Get-MoveRequest", false).to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(
            e.starts_with("not found: \u{FFFD}[2J\u{FFFD}[31mgone!!!"),
            "{e}"
        );
        assert!(e.chars().count() < crate::text::MESSAGE + 300, "bounded");
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(retry_after(Some("2.5")), Some(Duration::from_millis(2500)));
        assert_eq!(retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(Some("-1")), None);
    }
}
