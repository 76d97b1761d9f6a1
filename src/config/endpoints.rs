//! `[endpoints]`: where Entra ID, Exchange Online and Graph answer.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authority: String,
    pub exchange: String,
    pub graph: String,
}

impl Endpoints {
    /// Authority, Exchange and Graph all at one address: the simulator serves the three.
    pub fn all_at(base: &str) -> Endpoints {
        Endpoints {
            authority: base.to_string(),
            exchange: base.to_string(),
            graph: base.to_string(),
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            authority: "https://login.microsoftonline.com".into(),
            exchange: "https://outlook.office365.com".into(),
            graph: "https://graph.microsoft.com".into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoints {
    base: Option<Spanned<String>>,
    authority: Option<Spanned<String>>,
    exchange: Option<Spanned<String>>,
    graph: Option<Spanned<String>>,
}

impl Endpoints {
    pub(super) fn from_raw(cx: &Ctx, raw: RawEndpoints) -> Result<Endpoints, ConfigError> {
        let mut d = Endpoints::default();
        if raw.base.is_some() {
            let base = cx.url(&raw.base, "endpoints.base", "")?;
            d = Endpoints::all_at(&base);
        }
        Ok(Endpoints {
            authority: cx.url(&raw.authority, "endpoints.authority", &d.authority)?,
            exchange: cx.url(&raw.exchange, "endpoints.exchange", &d.exchange)?,
            graph: cx.url(&raw.graph, "endpoints.graph", &d.graph)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn endpoints_are_checked_without_echoing_credentials() {
        for key in ["authority", "exchange", "graph"] {
            let e = parse(&format!(
                "[endpoints]\n{key} = \"https://admin:hunter2-pw@evil.example/x\"\n"
            ))
            .unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("user name or password")
                    && text.contains("\"https://evil.example/x\""),
                "{text}"
            );
            assert!(
                !text.contains("hunter2") && !text.contains("admin"),
                "{text}"
            );
        }
        let e = parse("[endpoints]\nexchange = \"http://outlook.office365.com\"\n").unwrap_err();
        assert!(e.to_string().contains("only allowed to a loopback"), "{e}");
        assert!(parse("[endpoints]\nexchange = \"http://127.0.0.1:8080\"\n").is_ok());
    }

    #[test]
    fn one_base_sets_every_endpoint_and_the_three_keys_still_win() {
        let c = parse("[endpoints]\nbase = \"http://127.0.0.1:4100/\"\n").unwrap();
        assert_eq!(c.endpoints.authority, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.exchange, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.graph, "http://127.0.0.1:4100");
        let c = parse(
            "[endpoints]\nbase = \"http://127.0.0.1:4100\"\ngraph = \"https://graph.microsoft.com\"\n",
        )
        .unwrap();
        assert_eq!(c.endpoints.exchange, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.graph, "https://graph.microsoft.com");
        let e = parse("[endpoints]\nbase = \"http://example.com\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("endpoints.base"), "{e}");
    }
}
