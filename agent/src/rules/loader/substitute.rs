//! Textual list substitution, applied to every condition before it is parsed.
//!
//! Falco replaces each occurrence of a list name that is delimited by the start/end of the
//! text or one of ` \t\n\r(),=` with the list's items joined by `", "`. The blanks around the
//! name are swallowed, the result is padded with single blanks, and an empty list also eats
//! one adjacent comma so `(a, empty_list)` stays a valid list literal. The same happens inside
//! quoted strings, exactly as in Falco.

use super::text::MappedText;

/// Blanks swallowed around a substituted name.
const BLANKS: &[u8] = b" \t\n\r";

/// Characters that may delimit a list name.
const DELIMITERS: &[u8] = b" \t\n\r(),=";

/// Whether a list item or exception value gets double quotes: it contains a blank and is
/// not already quoted.
pub(crate) fn needs_quotes(item: &str) -> bool {
    item.contains(' ') && !item.starts_with(['"', '\''])
}

/// The text a list name is replaced with: its items, quoted where needed, joined by `", "`.
pub(crate) fn joined(items: &[String]) -> String {
    items
        .iter()
        .map(|item| {
            if needs_quotes(item) {
                format!("\"{item}\"")
            } else {
                item.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Substitutes every delimited occurrence of `name` in `text` by `sub` (see [`joined`]); the
/// inserted characters are mapped to the position of the name they replace. Returns whether
/// anything was substituted (the list is then "used").
pub(crate) fn substitute(text: &mut MappedText, name: &str, sub: &str) -> bool {
    let mut used = false;
    let mut from = 0;
    while let Some(found) = find_from(text.as_str(), name, from) {
        let bytes = text.as_str().as_bytes();
        let end = found + name.len();
        let delimited = (found == 0 || DELIMITERS.contains(&bytes[found - 1]))
            && (end >= bytes.len() || DELIMITERS.contains(&bytes[end]));
        if !delimited {
            from = found + 1;
            continue;
        }
        let (start, end) = widen(bytes, found, end, sub.is_empty());
        let lead = if start > 0 { " " } else { "" };
        let replacement = MappedText::synthetic(&format!("{lead}{sub} "), text.pos_at_byte(found));
        text.replace_bytes(start..end, &replacement);
        // Falco resumes one byte past the blank after the substitution (at the very start
        // of the text that skips one more byte): kept for identical results.
        from = start + sub.len() + 2;
        used = true;
    }
    used
}

/// The occurrence of `name` at or after byte `from`, if any.
fn find_from(text: &str, name: &str, mut from: usize) -> Option<usize> {
    while from < text.len() && !text.is_char_boundary(from) {
        from += 1;
    }
    text.get(from..)?.find(name).map(|i| from + i)
}

/// Extends `[start, end)` over adjacent blanks, and over one adjacent comma when the list
/// is empty (left comma preferred).
fn widen(bytes: &[u8], mut start: usize, mut end: usize, empty: bool) -> (usize, usize) {
    while start > 0 && BLANKS.contains(&bytes[start - 1]) {
        start -= 1;
    }
    while end < bytes.len() && BLANKS.contains(&bytes[end]) {
        end += 1;
    }
    if empty {
        if start > 0 && bytes[start - 1] == b',' {
            start -= 1;
        } else if end < bytes.len() && bytes[end] == b',' {
            end += 1;
        }
    }
    (start, end)
}
