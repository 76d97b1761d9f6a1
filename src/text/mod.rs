//! Text from outside, and text going out. A leaf.
//!
//! Every string mailwave did not write itself (the service's answers, Graph's, a CSV's fields) is
//! cleaned once, where it is read ([`name`], [`message`], [`sheet`]'s rows): control characters
//! replaced, length bounded. So no output path has to remember that a display name may carry
//! `ESC[2J`. Each output then escapes for its own format: [`html`] (the html report and notices),
//! [`md`] (Markdown cells), [`sheet_cell`] (CSV that a spreadsheet will open).

pub mod sheet;

use std::borrow::Cow;

/// The longest name kept (display names, organisations, databases, servers, statuses, batch
/// names), in characters: Exchange's own limit for a display name.
pub const NAME: usize = 256;
/// The longest message kept (the service's error texts and reasons), in characters.
pub const MESSAGE: usize = 4096;
/// The longest address or identity kept, in characters (an SMTP address is at most 320).
pub const ADDRESS: usize = 320;

/// Characters that change what a terminal, a report or a ticket shows beyond the text itself:
/// C0 and C1 controls (ESC starts terminal escape sequences), DEL, and the Unicode marks that
/// reorder text or break lines.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// What an unsafe character becomes: a space for the ones that only break a line, else U+FFFD,
/// so that the reader sees something was there.
fn replacement(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{2028}' | '\u{2029}' => ' ',
        _ => '\u{FFFD}',
    }
}

/// `s` with unsafe characters replaced and at most `max` characters (a longer text is cut and
/// ends in "…"). Borrowed when nothing needed changing, which is nearly always.
pub fn clean(s: &str, max: usize) -> Cow<'_, str> {
    let fits = s.len() <= max || s.chars().count() <= max;
    // Printable ASCII, the usual case, is checked a byte at a time.
    if fits && (s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(unsafe_char)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (n, c) in s.chars().enumerate() {
        if n + 1 == max && !fits {
            out.push('…');
            break;
        }
        out.push(if unsafe_char(c) { replacement(c) } else { c });
    }
    Cow::Owned(out)
}

/// [`clean`] for an owned string: no copy when nothing needed changing.
pub fn clean_owned(s: String, max: usize) -> String {
    match clean(&s, max) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => o,
    }
}

/// A name from outside, cleaned (see [`NAME`]).
pub fn name(s: &str) -> String {
    clean(s, NAME).into_owned()
}

/// A message from outside, cleaned (see [`MESSAGE`]).
pub fn message(s: &str) -> String {
    clean(s, MESSAGE).into_owned()
}

/// Text for html and XML (SVG), in element content and in attributes quoted either way: the five
/// characters markup gives meaning to are escaped, and any control character left (from a
/// database written before text was cleaned) is replaced, as XML does not allow it.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if unsafe_char(c) => out.push(replacement(c)),
            c => out.push(c),
        }
    }
    out
}

/// Text for Markdown (a table cell, or a line of a list): it shows as written. A bar or a line
/// break cannot end the cell, `<` cannot open raw HTML or an autolink, and `[`, `*`, `` ` ``, `~`
/// cannot make a link, emphasis or code. `_` is escaped only where it could start emphasis, so
/// `first_last@contoso.com` reads as it is; `&` only where it could start an entity.
pub fn md(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        match c {
            '\\' | '|' | '<' | '>' | '[' | ']' | '*' | '`' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '_' if !(word(i.checked_sub(1)) && word(Some(i + 1))) => out.push_str("\\_"),
            '&' if entity_at(&chars[i + 1..]) => out.push_str("\\&"),
            c if unsafe_char(c) => out.push(replacement(c)),
            c => out.push(c),
        }
    }
    out
}

/// Whether the text after an `&` makes it an entity (`&amp;`, `&#60;`), which Markdown would show
/// as the character it names.
fn entity_at(after: &[char]) -> bool {
    let name = after.strip_prefix(&['#']).unwrap_or(after);
    let run = name
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    run > 0 && name.get(run) == Some(&';')
}

/// The characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A plain number, which a spreadsheet may read as one: `-5`, `+1.5`, `2e3`. Anything else that
/// starts with a sign is text.
fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (digits, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty())
        && all_digits(whole)
        && all_digits(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && all_digits(e))
}

/// A CSV cell as a spreadsheet should show it: text that starts with `=`, `+`, `-`, `@`, a tab or
/// a carriage return gets a leading `'`, so it is shown, never run as a formula (OWASP's rule).
/// Numbers are left alone. mailwave's own readers take the `'` off again ([`from_sheet`]).
pub fn sheet_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(FORMULA_START) && !is_number(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`sheet_cell`] as the bytes a CSV writer takes, without a copy for a cell left alone.
pub fn sheet_field(s: &str) -> Cow<'_, [u8]> {
    match sheet_cell(s) {
        Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
        Cow::Owned(o) => Cow::Owned(o.into_bytes()),
    }
}

/// A cell read from a CSV, without the `'` that [`sheet_cell`] (or a careful operator) put before
/// a formula character.
pub fn from_sheet(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) => rest,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_replaced_and_length_bounded() {
        assert!(matches!(clean("Alice Smith", NAME), Cow::Borrowed(_)));
        assert_eq!(
            clean("\u{1b}[2J\u{1b}[31mboom\u{7}", NAME),
            "\u{FFFD}[2J\u{FFFD}[31mboom\u{FFFD}"
        );
        assert_eq!(
            clean("line one\r\nline two\ttab", NAME),
            "line one  line two tab"
        );
        assert_eq!(clean("a\u{9b}31mb", NAME), "a\u{FFFD}31mb", "C1 CSI");
        assert_eq!(clean("evil\u{202e}gnp.exe", NAME), "evil\u{FFFD}gnp.exe");
        let long = "é".repeat(300);
        let cut = clean(&long, NAME);
        assert_eq!(cut.chars().count(), NAME);
        assert!(cut.ends_with('…'));
        assert_eq!(
            clean(&"x".repeat(NAME), NAME).len(),
            NAME,
            "exactly the limit is kept"
        );
        assert_eq!(message(&"m".repeat(10_000)).chars().count(), MESSAGE);
        assert_eq!(clean_owned("fine".into(), 4), "fine");
    }

    #[test]
    fn html_escapes_markup_and_what_xml_refuses() {
        assert_eq!(
            html("<b>\"O'Neil\" & co</b>"),
            "&lt;b&gt;&quot;O&#39;Neil&quot; &amp; co&lt;/b&gt;"
        );
        assert_eq!(
            html("Alice' onmouseover='x"),
            "Alice&#39; onmouseover=&#39;x"
        );
        assert_eq!(html("a\u{1b}b"), "a\u{FFFD}b");
    }

    #[test]
    fn markdown_shows_text_as_written() {
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(
            md("<img src=x onerror=alert(1)>"),
            "\\<img src=x onerror=alert(1)\\>"
        );
        assert_eq!(md("[click](javascript:x)"), "\\[click\\](javascript:x)");
        assert_eq!(md("first_last@contoso.com"), "first_last@contoso.com");
        assert_eq!(md("_init_@contoso.com"), "\\_init\\_@contoso.com");
        assert_eq!(md("AT&T &amp;"), "AT&T \\&amp;");
        assert_eq!(md("two\nlines"), "two lines");
        assert_eq!(
            md("back\\slash `code` *em*"),
            "back\\\\slash \\`code\\` \\*em\\*"
        );
    }

    #[test]
    fn formulas_are_shown_not_run_and_read_back() {
        for cell in [
            "=1+cmd|'/Ccalc'!A0",
            "+44 20 7946 0000",
            "-x",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            let out = sheet_cell(cell);
            assert_eq!(out, format!("'{cell}"), "{cell:?}");
            assert_eq!(from_sheet(&out), cell);
        }
        for left in [
            "-5",
            "+1.5",
            "-2.5e-3",
            "1e9",
            "alice@contoso.com",
            "",
            "'quoted",
        ] {
            assert_eq!(sheet_cell(left), left, "{left:?}");
        }
        assert_eq!(sheet_cell("-"), "'-");
        assert_eq!(sheet_cell("-1e"), "'-1e");
        assert_eq!(from_sheet("'tis"), "'tis", "a quote before a letter stays");
    }
}
