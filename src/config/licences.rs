//! `[licences]`: every mailbox's user holds an Exchange Online licence before its cut-over.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, parse_offset};

/// `[licences]`: every mailbox's user holds an Exchange Online licence before its cut-over.
#[derive(Debug, Clone)]
pub struct Licences {
    /// The SKU to assign (part number such as ENTERPRISEPACK, or its GUID); None: not checked.
    pub sku: Option<String>,
    /// Assign it to users who lack an Exchange Online plan (else they are listed for attention).
    pub assign: bool,
    /// A wave's users are checked (and licensed) this long before its window opens.
    pub before: jiff::SignedDuration,
}

impl Default for Licences {
    fn default() -> Licences {
        Licences {
            sku: None,
            assign: false,
            before: jiff::SignedDuration::from_hours(48),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLicences {
    sku: Option<Spanned<String>>,
    assign: Option<bool>,
    before: Option<Spanned<String>>,
}

impl Licences {
    pub(super) fn from_raw(cx: &Ctx, l: RawLicences) -> Result<Licences, ConfigError> {
        let d = Licences::default();
        let licences = Licences {
            sku: match &l.sku {
                Some(v) if v.get_ref().trim().is_empty() => {
                    return Err(cx.invalid(
                        v.span(),
                        "licences.sku",
                        "must name a SKU (ENTERPRISEPACK) or its GUID",
                    ));
                }
                Some(v) => Some(v.get_ref().trim().to_string()),
                None => None,
            },
            assign: l.assign.unwrap_or(d.assign),
            before: match &l.before {
                Some(v) => parse_offset(v.get_ref()).ok_or_else(|| {
                    cx.invalid(
                        v.span(),
                        "licences.before",
                        format!(
                            "{:?} is not a time before the window (\"2d\", \"36h\"; at most 60d)",
                            v.get_ref()
                        ),
                    )
                })?,
                None => d.before,
            },
        };
        if licences.assign && licences.sku.is_none() {
            return Err(ConfigError::Invalid {
                path: cx.path.to_path_buf(),
                line: 1,
                key: "licences.sku".into(),
                message: "assign = true needs the SKU to assign".into(),
            });
        }
        Ok(licences)
    }
}
