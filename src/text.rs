//! Small text helpers shared by every layer. A leaf: imports nothing of the crate.

/// `text` cut to at most `max_chars` characters (on a character boundary), ending in `…`
/// when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `text` with every control character (C0, DEL, C1: newlines, carriage returns, ANSI
/// escapes) written as a Rust-style escape, so upstream text in a log line can neither
/// start a forged line nor drive the terminal.
pub fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Upstream text as it may appear in a log line or an error: control characters escaped,
/// at most `max_chars` characters.
pub fn loggable(text: &str, max_chars: usize) -> String {
    escape_control(&truncate(text, max_chars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("a\nb"), "a\\nb");
        assert_eq!(escape_control("line\nforged=1"), "line\\nforged=1");
        assert_eq!(escape_control("x\u{1b}[31mred"), "x\\u{1b}[31mred");
        assert_eq!(escape_control("cr\rnul\0"), "cr\\rnul\\u{0}");
        assert_eq!(escape_control("한글 \"quoted\""), "한글 \"quoted\"");
        assert_eq!(loggable(&"a".repeat(10), 4), "aaaa…");
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_control_characters(s in any::<String>()) {
            prop_assert!(!escape_control(&s).chars().any(char::is_control));
            prop_assert!(!loggable(&s, 16).chars().any(char::is_control));
        }
    }

    #[test]
    fn truncate_cuts_on_character_boundaries() {
        assert_eq!(truncate("가나다라", 2), "가나…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("abcd", 0), "…");
    }
}
