//! SMTP address validation: strict enough to catch what breaks a move request (spaces, missing domain,
//! hashed report names), loose enough for every address Exchange accepts.

/// Why an address was refused, in words an operator can act on.
pub(crate) fn check(address: &str) -> Result<(), String> {
    if address.len() > 320 {
        return Err(format!(
            "{:?} is longer than an address can be (320 characters)",
            crate::format::clip(address, 60)
        ));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(format!("{address:?} is not an email address (no @)"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(format!(
            "{address:?}: the part before @ must be 1 to 64 characters"
        ));
    }
    if let Some(c) = local.chars().next().filter(|c| "=+-".contains(*c)) {
        // RFC 5322 allows it, but this address goes into the batch CSVs mailwave writes for
        // Microsoft's tools, where no formula guard can be put before it: opened in a spreadsheet,
        // `=1+cmd|'/Ccalc'!A0@contoso.com` would run.
        return Err(format!(
            "{address:?} starts with {c:?}: a spreadsheet opening a batch file would take it for a formula"
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(format!("{address:?}: misplaced dot before @"));
    }
    if let Some(c) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(*c)))
    {
        return Err(format!(
            "{address:?}: character {c:?} is not allowed before @"
        ));
    }
    if domain.len() > 253 || !domain.contains('.') {
        return Err(format!("{address:?}: {domain:?} is not a domain name"));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("{address:?}: {domain:?} is not a domain name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_real_addresses() {
        for a in [
            "alice@contoso.com",
            "o'brien.j@nhs.net",
            "first.last+tag@sub.example.co.uk",
            "X_Y-1@a-b.org",
        ] {
            assert!(check(a).is_ok(), "{a}");
        }
    }

    #[test]
    fn refuses_broken_ones() {
        for a in [
            "",
            "alice",
            "alice@",
            "@contoso.com",
            "al ice@contoso.com",
            "alice@contoso",
            "alice@-contoso.com",
            "alice@contoso..com",
            ".alice@contoso.com",
            "a..b@contoso.com",
            "5B1C5F6D8A0E1F2A3B4C5D6E7F809A1B",
            "=1+cmd|'/Ccalc'!A0@contoso.com",
            "+x@contoso.com",
            "-x@contoso.com",
        ] {
            assert!(check(a).is_err(), "{a}");
        }
    }
}
