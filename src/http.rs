//! The one HTTP policy every client mailwave builds follows: Entra ID, Exchange Online, Graph, the
//! report download and the webhook.
//!
//! - a connect timeout, a read timeout between bytes, and a total time per call class;
//! - no automatic redirects (the one redirect that is expected, the usage report's 302, is followed
//!   by hand, without the token);
//! - no decompression (nothing asks for it; a compressed answer is just unreadable);
//! - bodies read with a cap per call class, so a huge or endless answer ends the call, not the
//!   process;
//! - https to anything but a loopback address; and a `nextLink` or redirect is only followed to the
//!   origin it came from (the bearer token never goes elsewhere).
//!
//! A leaf: it knows nothing of mailwave's other modules.

use std::time::Duration;

use reqwest::Url;

/// What a call is for: each class has its own total time and body cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    /// A token from Entra ID.
    Token,
    /// One InvokeCommand call (or one page of a listing).
    Cmdlet,
    /// A Graph call.
    Graph,
    /// The usage report download (it can be hundreds of MB for millions of mailboxes).
    Report,
    /// A post to the operator's webhook.
    Webhook,
}

/// The timeouts, from the configuration (`run.call_timeout`) and fixed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub connect: Duration,
    /// The longest a cmdlet or Graph call (or a listing page) may take in all, and the longest
    /// gap between two reads of an answer.
    pub call: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect: Duration::from_secs(10),
            call: Duration::from_secs(120),
        }
    }
}

const MIB: usize = 1 << 20;

impl Policy {
    /// The longest a call of this class may take.
    pub fn total(&self, class: CallClass) -> Duration {
        match class {
            CallClass::Token => self.call.min(Duration::from_secs(30)),
            CallClass::Cmdlet | CallClass::Graph => self.call,
            CallClass::Report => Duration::from_secs(30 * 60).max(self.call),
            CallClass::Webhook => Duration::from_secs(10).min(self.call),
        }
    }

    /// The most bytes an answer of this class may have.
    pub fn body_cap(&self, class: CallClass) -> u64 {
        (match class {
            CallClass::Token | CallClass::Webhook => MIB / 4,
            // A page of a thousand move requests is about 1.5 MB.
            CallClass::Cmdlet => 32 * MIB,
            CallClass::Graph => 16 * MIB,
            // About 250 bytes a mailbox: 2.1 million is half a gigabyte.
            CallClass::Report => 4096 * MIB,
        }) as u64
    }

    /// A client under this policy. Timeouts per call class are set on each request.
    pub fn client(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.call)
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .build()
    }
}

/// Why a call's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {cap} bytes; reading stopped")]
    TooLarge { cap: u64 },
    #[error("the answer stopped part-way: {0}")]
    Broken(String),
    #[error("the answer could not be written: {0}")]
    Write(String),
}

/// Reads a body up to `cap` bytes (refusing at once one that declares more).
pub async fn read_capped(response: reqwest::Response, cap: u64) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    copy_capped(response, cap, &mut out).await?;
    Ok(out)
}

/// Writes a body to `to` as it comes, up to `cap` bytes (refusing at once one that declares
/// more); returns the bytes written.
pub async fn copy_capped(
    mut response: reqwest::Response,
    cap: u64,
    to: &mut (dyn std::io::Write + Send),
) -> Result<u64, BodyError> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge { cap });
    }
    let mut written = 0u64;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                written += chunk.len() as u64;
                if written > cap {
                    return Err(BodyError::TooLarge { cap });
                }
                to.write_all(&chunk)
                    .map_err(|e| BodyError::Write(e.to_string()))?;
            }
            Ok(None) => return Ok(written),
            Err(e) => return Err(BodyError::Broken(describe(&e))),
        }
    }
}

/// A reqwest error as an operator reads it, without the URL (a pre-signed download URL, or a
/// webhook's token, must not reach a log).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    // The source chain says why (connection refused, reset, ...); never the URL.
    let mut why = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why = s.to_string();
        source = s.source();
    }
    if why.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {why}")
    }
}

/// Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// An endpoint mailwave may call: https, or http to a loopback address (the simulator, a test).
/// Credentials, user names or a fragment in it are refused.
pub fn check_endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(
                "http:// is only allowed to a loopback address (127.0.0.1, ::1, localhost); use https://"
                    .into(),
            );
        }
        other => return Err(format!("{other}:// is not https")),
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(url)
}

/// An endpoint as an error may show it: scheme, host, port and path, never a user name, password,
/// query or fragment (they may hold a credential). Text that is not a URL is not shown at all.
pub fn shown(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if url.has_host() => format!(
            "\"{}://{}{}{}\"",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            url.path().trim_end_matches('/')
        ),
        _ if text.contains('@') => "the address".into(),
        _ => format!("{text:?}"),
    }
}

/// Whether two URLs share scheme, host and port: where a `nextLink` may lead with the token.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_or_loopback() {
        for ok in [
            "https://outlook.office365.com",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:9",
            "http://localhost:1",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://outlook.office365.com", "only allowed to a loopback"),
            ("http://10.0.0.1", "only allowed to a loopback"),
            ("ftp://x.example", "is not https"),
            ("https://user:pw@x.example", "user name or password"),
            ("https://x.example/#a", "fragment"),
            ("outlook.office365.com", "not a URL"),
        ] {
            let e = check_endpoint(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn an_endpoint_is_shown_without_what_may_be_a_credential() {
        assert_eq!(
            shown("https://admin:hunter2@x.example:8443/a/?k=secret#f"),
            "\"https://x.example:8443/a\""
        );
        assert_eq!(shown("outlook.office365.com"), "\"outlook.office365.com\"");
        assert_eq!(shown("admin:hunter2@x.example"), "the address");
    }

    #[test]
    fn origins() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://outlook.office365.com/adminapi/beta/t/InvokeCommand"),
            &u("https://OUTLOOK.office365.com:443/adminapi/beta/t/InvokeCommand?$skiptoken=1")
        ));
        assert!(!same_origin(
            &u("https://outlook.office365.com/x"),
            &u("https://evil.example/x")
        ));
        assert!(!same_origin(
            &u("https://outlook.office365.com/x"),
            &u("http://outlook.office365.com/x")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/x"),
            &u("http://127.0.0.1:2/x")
        ));
    }

    #[test]
    fn totals_and_caps_per_class() {
        let p = Policy {
            connect: Duration::from_secs(10),
            call: Duration::from_secs(5),
        };
        assert_eq!(p.total(CallClass::Token), Duration::from_secs(5));
        assert_eq!(p.total(CallClass::Cmdlet), Duration::from_secs(5));
        assert_eq!(p.total(CallClass::Webhook), Duration::from_secs(5));
        assert!(p.total(CallClass::Report) >= Duration::from_secs(1800));
        assert!(p.body_cap(CallClass::Report) > p.body_cap(CallClass::Cmdlet));
        assert!(p.body_cap(CallClass::Token) < 1 << 20);
    }
}
