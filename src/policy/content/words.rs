//! Whether a Chinese keyword found inside a body is a word there: 工行 is a
//! word in 您的工行账户 but not in 施工行业, which segments as 施工 / 行业.
//!
//! Segmentation (jieba-rs, its built-in dictionary, no HMM so unknown
//! characters stay single) is costly, so it runs only on a window of a few
//! characters around a candidate that the keyword automaton already found,
//! and only when a CJK character touches the candidate.

use std::sync::LazyLock;

use jieba_rs::Jieba;

use super::normalize::is_cjk;

/// Characters of context on each side of a candidate.
const CONTEXT: usize = 6;

static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Loads the dictionary now (at policy load), not at the first decision.
pub fn warm() {
    LazyLock::force(&JIEBA);
}

/// Is `text[start..end]` a word (or a run of whole words) of `text`?
/// Spans must be on character boundaries; anything else is not a word.
pub fn is_word(text: &str, start: usize, end: usize) -> bool {
    let (Some(before), Some(after)) = (text.get(..start), text.get(end..)) else {
        return false;
    };
    let glued_before = before.chars().next_back().is_some_and(is_cjk);
    let glued_after = after.chars().next().is_some_and(is_cjk);
    if !glued_before && !glued_after {
        return true;
    }
    // The window: up to CONTEXT CJK characters each side.
    let from = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_cjk(*c))
        .take(CONTEXT)
        .last()
        .map_or(start, |(i, _)| i);
    let to = end
        + after
            .char_indices()
            .take_while(|(_, c)| is_cjk(*c))
            .take(CONTEXT)
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
    let Some(window) = text.get(from..to) else {
        return false;
    };
    let (s, e) = (start - from, end - from);
    let mut start_ok = s == 0;
    let mut end_ok = e == window.len();
    for t in JIEBA.cut(window, false) {
        start_ok |= t.byte_start == s;
        end_ok |= t.byte_end == e;
    }
    start_ok && end_ok
}

#[cfg(test)]
mod tests {
    use super::is_word;

    fn word(text: &str, w: &str) -> bool {
        let s = text.find(w).unwrap();
        is_word(text, s, s + w.len())
    }

    #[test]
    fn names_inside_other_words_are_not_words() {
        assert!(!word("为施工行业提供手套", "工行"));
        assert!(word("您的工行账户已冻结", "工行"));
        assert!(word("工商银行提醒您", "工商银行"));
        assert!(!word("新建行政楼", "建行"));
        assert!(!word("可借鉴经验", "可借"));
        assert!(!word("以下款项", "下款"));
        assert!(word("Chase bank", "Chase"));
    }
}
