//! Small text helpers shared by every layer. A leaf: imports nothing of the crate.

/// `text` cut to at most `max_chars` characters (on a character boundary), ending in `…`
/// when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_character_boundaries() {
        assert_eq!(truncate("가나다라", 2), "가나…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("abcd", 0), "…");
    }
}
