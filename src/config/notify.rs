//! `[notify]`: where the run's summary and alerts go.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Notices, plausible_address};

/// `[notify]`: where the run's summary goes.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// A Teams or Slack incoming webhook. It holds a token: it is never logged.
    pub webhook_url: Option<crate::secrets::Secret>,
    /// Post as soon as this many mailboxes have failed in a run (0: only at the end).
    pub failure_threshold: u64,
    /// Mail the html report here after each window closes (sent by the `[notices]` senders).
    pub report_to: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    report_to: Option<Spanned<Vec<Spanned<String>>>>,
    webhook_url: Option<Spanned<String>>,
    webhook_url_env: Option<Spanned<String>>,
    failure_threshold: Option<Spanned<i64>>,
}

impl Notify {
    pub(super) fn from_raw(cx: &Ctx, n: &RawNotify) -> Result<Notify, ConfigError> {
        // The URL carries a token: an error names where it came from, never the URL itself.
        let webhook_url = match (&n.webhook_url, &n.webhook_url_env) {
            (Some(u), _) => {
                if let Err(m) = crate::http::check_endpoint(u.get_ref()) {
                    return Err(cx.invalid(u.span(), "notify.webhook_url", m));
                }
                Some(crate::secrets::Secret::new(u.get_ref().clone()))
            }
            (None, Some(var)) => {
                match std::env::var(var.get_ref()).ok().filter(|v| !v.is_empty()) {
                    Some(url) => {
                        if let Err(m) = crate::http::check_endpoint(&url) {
                            return Err(cx.invalid(
                                var.span(),
                                "notify.webhook_url_env",
                                format!("the URL in {} {m}", var.get_ref()),
                            ));
                        }
                        Some(crate::secrets::Secret::new(url))
                    }
                    None => None,
                }
            }
            (None, None) => None,
        };
        let mut notify = Notify {
            webhook_url,
            failure_threshold: match &n.failure_threshold {
                Some(v) if *v.get_ref() < 0 => {
                    return Err(cx.invalid(
                        v.span(),
                        "notify.failure_threshold",
                        "must be zero or more",
                    ));
                }
                Some(v) => *v.get_ref() as u64,
                None => Notify::default().failure_threshold,
            },
            report_to: Vec::new(),
        };
        if let Some(list) = &n.report_to {
            for a in list.get_ref() {
                if !plausible_address(a.get_ref()) {
                    return Err(cx.invalid(
                        a.span(),
                        "notify.report_to",
                        format!("{:?} is not a mail address", a.get_ref()),
                    ));
                }
                notify.report_to.push(a.get_ref().clone());
            }
        }
        Ok(notify)
    }
}

impl RawNotify {
    /// The report is mailed by the `[notices]` senders, so a report needs one.
    pub(super) fn check_senders(&self, cx: &Ctx, notices: &Notices) -> Result<(), ConfigError> {
        if let Some(list) = &self.report_to
            && !list.get_ref().is_empty()
            && notices.senders.is_empty()
        {
            return Err(cx.invalid(
                list.span(),
                "notify.report_to",
                "the report is mailed by the [notices] senders: name at least one",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn notify_section() {
        let c = parse(
            "[notify]\nwebhook_url = \"https://hooks.example/abc\"\nfailure_threshold = 10\n",
        )
        .unwrap();
        assert_eq!(c.notify.failure_threshold, 10);
        assert_eq!(format!("{:?}", c.notify.webhook_url), "Some(***)");
        let e = parse("[notify]\nwebhook_url = \"http://hooks.example/secret-token-abc\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("notify.webhook_url"), "{e}");
        assert!(
            !e.to_string().contains("secret-token-abc"),
            "the URL is never echoed: {e}"
        );
    }
}
