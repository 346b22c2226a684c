//! Text from a server made safe to show: terminal-safe and cut to a bound, an error
//! body reduced to a readable snippet (an HTML page to its title), one line.

/// Server text shown on stderr (an error message or type, a request id, a page
/// title, a model id) is cut to this many characters.
pub const MAX_SERVER_TEXT: usize = 1000;

/// No diagnostic line is longer than this many characters (several server strings
/// of [`MAX_SERVER_TEXT`] and our own words).
pub const MAX_LINE_CHARS: usize = 4 * MAX_SERVER_TEXT;

/// Characters that must not reach a terminal from a server: C0 and C1 controls and
/// DEL (escape sequences, carriage returns), bidi embeddings, overrides, isolates and
/// marks (text that reads differently from what it is, "Trojan Source"), and the
/// line and paragraph separators.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// A string from the server made safe for one stderr line: white space controls and
/// separators become spaces, other unsafe characters (see [`is_unsafe_char`]) U+FFFD,
/// and it is cut to [`MAX_SERVER_TEXT`] characters (then ends in `…`). Assistant
/// text on stdout never goes through this: it is data.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SERVER_TEXT * 4));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_SERVER_TEXT {
            out.push('…');
            break;
        }
        out.push(match c {
            c if !is_unsafe_char(c) => c,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            _ => '\u{FFFD}',
        });
    }
    out
}

/// At most 200 characters of a body, control characters and runs of white space
/// folded to single spaces, so a page cannot flood or garble the terminal. An HTML
/// page is reduced to its title or first heading, as text, never markup.
pub fn snippet(body: &[u8]) -> String {
    if let Some(binary) = binary_summary(body) {
        return binary;
    }
    if looks_like_html(body)
        && let Some(summary) = html_summary(&String::from_utf8_lossy(body))
    {
        return fold(&summary, 200);
    }
    fold(&String::from_utf8_lossy(body), 200)
}

/// A body that is not text (compressed, an image, random bytes) as its first bytes
/// in hex, instead of a line of replacement characters: `None` for text, also text
/// with a stray invalid byte or a character cut at the end.
pub(crate) fn binary_summary(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(1024)];
    let text = String::from_utf8_lossy(head);
    let total = text.chars().count();
    let junk = text
        .chars()
        .filter(|&c| c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()))
        .count();
    // More than one character in eight that no text has.
    if junk == 0 || junk * 8 <= total {
        return None;
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let more = if body.len() > 8 { " …" } else { "" };
    Some(format!(
        "binary data, not text (starting {}{more})",
        hex.join(" ")
    ))
}

/// `text` with unsafe characters and runs of white space folded to single spaces,
/// cut to `max` characters (then ending in `…`).
pub(crate) fn fold(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() || is_unsafe_char(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
        if count >= max {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_owned()
}

/// The body starts like an HTML page.
pub(crate) fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(1024)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let head = head.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    head.starts_with('<')
        && ["<html", "<!doctype html", "<head", "<title", "<body", "<h1"]
            .iter()
            .any(|tag| head.contains(tag))
}

/// An HTML page as one short text: its `<title>` (else its first heading, else its
/// text, marked as a page), then the server's signature line under an `<hr>` in parentheses (nginx and
/// Cloudflare: `502 Bad Gateway (cloudflare)`). `None` when the page has no text.
pub(crate) fn html_summary(page: &str) -> Option<String> {
    // ASCII lowercasing keeps every byte offset, so indices found in `lower` cut `page`.
    let lower = page.to_ascii_lowercase();
    let element = |tag: &str, from: usize| -> Option<(String, usize)> {
        let open = from + lower[from..].find(&format!("<{tag}"))?;
        // `<h1>` or `<h1 class=…>`, not `<hr>` for `<h`.
        let after = lower[open + 1 + tag.len()..].chars().next()?;
        if !(after == '>' || after.is_ascii_whitespace()) {
            return None;
        }
        let start = open + lower[open..].find('>')? + 1;
        let end = lower[start..]
            .find(&format!("</{tag}"))
            .map_or(lower.len(), |e| start + e);
        Some((fold(&html_text(&page[start..end], ' '), 200), end))
    };
    let headline = element("title", 0)
        .filter(|(t, _)| !t.is_empty())
        .or_else(|| {
            ["h1", "h2", "h3"]
                .iter()
                .filter_map(|h| element(h, 0))
                .find(|(t, _)| !t.is_empty())
        })
        .map(|(t, _)| t);
    let Some(headline) = headline else {
        let text = fold(&html_text(page, ' '), 200);
        return (!text.is_empty()).then(|| format!("HTML page: {text}"));
    };
    // The signature: the first text after an `<hr>`, if it is short.
    let signature = lower.find("<hr").and_then(|hr| {
        let text = html_text(prefix(&page[hr..], 512), '\n');
        let first = text
            .split('\n')
            .map(|t| fold(t, 200))
            .find(|t| !t.is_empty())?;
        (first.chars().count() <= 80 && first != headline).then_some(first)
    });
    Some(match signature {
        Some(s) => format!("{headline} ({s})"),
        None => headline,
    })
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The text of an HTML fragment: tags dropped (with the contents of `<script>` and
/// `<style>`), common entities decoded, each tag replaced by `tag_sep`.
pub(crate) fn html_text(fragment: &str, tag_sep: char) -> String {
    let lower = fragment.to_ascii_lowercase();
    let mut out = String::new();
    let mut i = 0;
    while i < fragment.len() {
        let rest = &fragment[i..];
        if rest.starts_with('<') {
            let skip_to = ["script", "style"].iter().find_map(|tag| {
                lower[i..]
                    .starts_with(&format!("<{tag}"))
                    .then(|| lower[i..].find(&format!("</{tag}")))
                    .flatten()
            });
            let from = i + skip_to.unwrap_or(0);
            match lower[from..].find('>') {
                Some(end) => i = from + end + 1,
                None => break,
            }
            out.push(tag_sep);
        } else if rest.starts_with('&')
            && let Some((c, len)) = entity(rest)
        {
            out.push(c);
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// A character entity at the start of `s`: the character and the entity's length.
pub(crate) fn entity(s: &str) -> Option<(char, usize)> {
    let end = prefix(s, 12).find(';')?;
    let name = &s[1..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let n = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(n)?
        }
    };
    Some((c, end + 1))
}

/// Error messages are one line: control characters, bidi controls and separators
/// become spaces (see [`is_unsafe_char`]), and the line is cut to [`MAX_LINE_CHARS`].
pub fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_LINE_CHARS)
        .map(|c| if is_unsafe_char(c) { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_LINE_CHARS).is_some() {
        out.push('…');
    }
    out
}
