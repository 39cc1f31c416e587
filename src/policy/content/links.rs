//! Links in a body, with or without a scheme, and what their host is:
//! one of the sender's domains (or a subdomain), a shortener/redirector,
//! an IP literal or punycode host, or some other host.
//!
//! Hosts are read as a browser reads them (CONTRACT.md §10): labels may be
//! non-ASCII (`https://惠农.top/a`), ideographic full stops separate labels,
//! and a host is never cut at its first non-ASCII character
//! (`huinong.cn.贷款网.top` is one host, not `huinong.cn`). Without a scheme
//! a link is recognized when it starts with `www.` or its host ends in a
//! top-level domain of the Public Suffix List (`refund.cyou`, `x.cn/a`).
//! Hosts are judged in their ASCII (punycode) form ([`super::hosts`]).

use crate::policy::content::hosts;
use crate::policy::lexicon::Span;

/// One link: its whole span and its host's span in the normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub span: Span,
    pub host: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// One of the sender's domains or a subdomain of one.
    Sender,
    /// A shortener/redirector, an IP literal or a punycode host.
    Shortener,
    /// Any other host.
    Other,
}

fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// A character of a host label: ASCII letter, digit or hyphen, or a
/// non-ASCII letter or digit (CJK punctuation is not one).
fn label_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '-'
    } else {
        c.is_alphanumeric()
    }
}

fn is_dot(c: char) -> bool {
    matches!(c, '.' | '。' | '｡' | '．')
}

fn url_byte(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'"' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^'
        )
}

fn starts_with_ci(hay: &[u8], needle: &str) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle.as_bytes())
}

/// Is `host` equal to `domain` or a subdomain of it (ASCII case-insensitive)?
pub fn within(host: &str, domain: &str) -> bool {
    let (h, d) = (host.as_bytes(), domain.as_bytes());
    if h.len() == d.len() {
        return h.eq_ignore_ascii_case(d);
    }
    h.len() > d.len()
        && h[h.len() - d.len() - 1] == b'.'
        && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[')
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn is_punycode(host: &str) -> bool {
    host.split('.')
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"))
}

/// Classifies an ASCII host (see [`hosts::to_ascii`]).
pub fn classify(host: &str, domains: &[String], shorteners: &[String]) -> HostKind {
    if domains.iter().any(|d| within(host, d)) {
        HostKind::Sender
    } else if is_ip_literal(host) || is_punycode(host) || shorteners.iter().any(|s| within(host, s))
    {
        HostKind::Shortener
    } else {
        HostKind::Other
    }
}

/// Extends a link over its path, dropping trailing sentence punctuation.
fn path_end(b: &[u8], mut end: usize) -> usize {
    if end < b.len() && matches!(b[end], b'/' | b':' | b'?' | b'#') {
        while end < b.len() && url_byte(b[end]) {
            end += 1;
        }
    }
    end
}

fn trim_trailing(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start
        && matches!(
            b[end - 1],
            b'.' | b',' | b';' | b'!' | b'?' | b')' | b':' | b'-'
        )
    {
        end -= 1;
    }
    end
}

/// Can a link start at `i`: an ASCII letter or digit not glued to a
/// preceding word, host, e-mail address or path?
fn token_start(b: &[u8], i: usize) -> bool {
    b[i].is_ascii_alphanumeric()
        && (i == 0
            || !(b[i - 1].is_ascii_alphanumeric()
                || matches!(b[i - 1], b'.' | b'-' | b'@' | b'_' | b'/')))
}

/// Is `label` a top-level domain the pack lists or the PSL knows?
fn tld<T: AsRef<str>>(label: &str, extra: &[T]) -> bool {
    extra.iter().any(|t| t.as_ref().eq_ignore_ascii_case(label)) || hosts::is_tld(label)
}

/// `How`, `See`: a capitalized word after a missing space ("Hello.How
/// are you"), not a scheme-less host's top-level domain.
fn title_case(label: &str) -> bool {
    let mut c = label.chars();
    c.next().is_some_and(char::is_uppercase) && c.any(char::is_lowercase)
}

/// The end of the host starting at `start`: labels of [`label_char`]s
/// separated by dots. With `scheme`, ideographic full stops separate labels
/// whatever follows; without, only before an ASCII label (a 。 ending a
/// Chinese sentence is not a dot). The host is then cut back to the longest
/// run of labels ending in a known top-level domain, trying the ASCII head
/// of a last label glued to following text (`cn回T退订` → `cn`); a
/// scheme-less host that cannot be cut so is no host.
fn host_end<T: AsRef<str>>(text: &str, start: usize, scheme: bool, extra: &[T]) -> Option<usize> {
    // Label ends (byte offsets after each label), dots between them.
    let mut ends: Vec<usize> = Vec::new();
    let mut ascii_dot: Vec<bool> = Vec::new();
    let mut i = start;
    let mut label_start = start;
    let mut chars = text[start..]
        .char_indices()
        .map(|(k, c)| (start + k, c))
        .peekable();
    while let Some((k, c)) = chars.next() {
        if label_char(c) {
            i = k + c.len_utf8();
            continue;
        }
        let next = chars.peek().map(|(_, n)| *n);
        let dot_ok = is_dot(c)
            && i > label_start
            && next.is_some_and(|n| {
                label_char(n) && (c == '.' || scheme || n.is_ascii_alphanumeric())
            });
        if !dot_ok {
            break;
        }
        ends.push(i);
        ascii_dot.push(c == '.');
        label_start = k + c.len_utf8();
        i = label_start;
    }
    if i > label_start {
        ends.push(i);
    }
    // Label k spans from (k == 0 ? start : ends[k-1] + dot) to ends[k].
    let label = |k: usize| -> (usize, usize) {
        let s = if k == 0 {
            start
        } else {
            let prev = ends[k - 1];
            prev + text[prev..].chars().next().map_or(1, char::len_utf8)
        };
        (s, ends[k])
    };
    for n in (1..ends.len()).rev() {
        let (s, e) = label(n);
        let last = &text[s..e];
        // A CJK top-level domain only after an ASCII dot without a scheme.
        let whole_ok =
            (last.is_ascii() || scheme || ascii_dot[n - 1]) && (scheme || !title_case(last));
        if whole_ok && tld(last, extra) {
            return Some(e);
        }
        let head = last
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
            .count();
        if head > 0 && head < last.len() && tld(&last[..head], extra) {
            return Some(s + head);
        }
    }
    if scheme {
        // No known top-level domain (`http://intranet/x`): the host as written.
        return ends.last().copied().filter(|e| *e > start);
    }
    None
}

/// The link whose host starts at `host_start` (after any scheme and user
/// info), if any, and where to go on.
fn link_at<T: AsRef<str>>(
    text: &str,
    i: usize,
    host_start: usize,
    scheme: bool,
    tlds: &[T],
) -> (Option<Link>, usize) {
    let b = text.as_bytes();
    let end_of_host = if scheme && b.get(host_start) == Some(&b'[') {
        let mut e = host_start;
        while e < b.len() && b[e] != b']' && url_byte(b[e]) {
            e += 1;
        }
        // The closing bracket belongs to the host; an unclosed one ends at
        // the last URL byte (stepping past a non-ASCII byte would cut a
        // character in two).
        if b.get(e) == Some(&b']') {
            e += 1;
        }
        Some(e)
    } else {
        host_end(text, host_start, scheme, tlds)
    };
    let Some(host_end) = end_of_host else {
        return (None, (host_start + 1).max(i + 1));
    };
    let host_end = if b.get(host_start) == Some(&b'[') {
        host_end
    } else {
        trim_trailing(b, host_start, host_end)
    };
    // `user.name@mail.com` is an address, not the host `user.name`.
    if host_end <= host_start || b.get(host_end) == Some(&b'@') {
        return (None, (host_start + 1).max(i + 1));
    }
    let host = &text[host_start..host_end];
    if !scheme && !host.contains(['.', '。', '｡', '．']) {
        return (None, host_end.max(i + 1));
    }
    let end = trim_trailing(b, host_end, path_end(b, host_end));
    let link = Link {
        span: (i, end),
        host: (host_start, host_end),
    };
    (Some(link), end.max(i + 1))
}

/// A scheme link starting at token start `i`: `(scheme length, host start)`.
fn scheme_at(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    let scheme = ["https://", "http://"]
        .into_iter()
        .find(|s| starts_with_ci(&b[i..], s))?;
    let mut host_start = i + scheme.len();
    // Skip user info: in `http://huinong.cn@evil.com/` the host is evil.com.
    let mut end = host_start;
    while end < b.len() && url_byte(b[end]) && !matches!(b[end], b'/' | b'?' | b'#') {
        end += 1;
    }
    if let Some(at) = b[host_start..end].iter().rposition(|c| *c == b'@') {
        host_start += at + 1;
    }
    Some(host_start)
}

/// Finds every link in `text`; `tlds` are extra top-level domains (besides
/// the Public Suffix List's) that make a scheme-less `name.tld` a link.
pub fn find<T: AsRef<str>>(text: &str, tlds: &[T], out: &mut Vec<Link>) {
    let b = text.as_bytes();
    if text.contains("://") {
        let mut i = 0;
        while i < b.len() {
            if !token_start(b, i) {
                i += 1;
                continue;
            }
            match scheme_at(text, i) {
                Some(host_start) => {
                    let (link, next) = link_at(text, i, host_start, true, tlds);
                    out.extend(link);
                    i = next;
                }
                None => i += 1,
            }
        }
    }
    // Scheme-less links have a dot in their host: jump from dot to dot.
    let mut from = 0;
    while let Some(rel) = text[from..].find(['.', '。', '｡', '．']) {
        let dot = from + rel;
        let dot_len = text[dot..].chars().next().map_or(1, char::len_utf8);
        let mut start = dot;
        while start > from && host_byte(b[start - 1]) {
            start -= 1;
        }
        if start == dot {
            // A label of letters other than ASCII (惠农.top): take the whole
            // run of such letters before the dot.
            start = text[from..dot]
                .char_indices()
                .rev()
                .take_while(|(_, c)| !c.is_ascii() && label_char(*c))
                .last()
                .map_or(dot, |(k, _)| from + k);
        }
        let glued = start > 0 && matches!(b[start - 1], b'.' | b'-' | b'@' | b'_' | b'/');
        let inside = out.iter().any(|l| l.span.0 <= start && start < l.span.1);
        if start < dot && !glued && !inside {
            let token = text[start..].chars().next().is_some_and(|c| !c.is_ascii())
                || token_start(b, start);
            if token {
                let (link, next) = link_at(text, start, start, false, tlds);
                if let Some(l) = link {
                    out.push(l);
                }
                from = next.max(dot + dot_len);
                continue;
            }
        }
        from = dot + dot_len;
    }
    out.sort_by_key(|l| l.span.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find::<&str>(text, &[], &mut out);
        out.iter().map(|l| &text[l.host.0..l.host.1]).collect()
    }

    #[test]
    fn links_with_and_without_scheme() {
        assert_eq!(
            hosts("详询https://www.huinong.cn/a回T退订"),
            vec!["www.huinong.cn"]
        );
        assert_eq!(
            hosts("see jinyun.com/sale. or x.cn/a"),
            vec!["jinyun.com", "x.cn"]
        );
        assert_eq!(hosts("go www.example.org now"), vec!["www.example.org"]);
        assert_eq!(hosts("HTTP://1.2.3.4/x"), vec!["1.2.3.4"]);
        assert_eq!(hosts("https://huinong.cn@evil.com/a"), vec!["evil.com"]);
        assert_eq!(hosts("http://u:p@bit.ly"), vec!["bit.ly"]);
        assert_eq!(hosts("rate 7.2% and 3.14 mail a@b.com"), Vec::<&str>::new());
        assert_eq!(hosts("claim at refund.cyou today"), vec!["refund.cyou"]);
    }

    #[test]
    fn non_ascii_hosts_are_read_whole() {
        assert_eq!(hosts("详询https://惠农.top/a 回T退订"), vec!["惠农.top"]);
        assert_eq!(
            hosts("https://huinong.cn.贷款网.top/a"),
            vec!["huinong.cn.贷款网.top"]
        );
        assert_eq!(
            hosts("huinong.cn.贷款网.top/a"),
            vec!["huinong.cn.贷款网.top"]
        );
        assert_eq!(hosts("详询huinong。cn/a"), vec!["huinong。cn"]);
        assert_eq!(hosts("https://huinong.cn回T退订"), vec!["huinong.cn"]);
        assert_eq!(hosts("请访问huinong.cn。谢谢"), vec!["huinong.cn"]);
        assert_eq!(hosts("您好。我们是正规公司。谢谢"), Vec::<&str>::new());
    }

    #[test]
    fn bracketed_hosts_end_at_the_bracket_or_the_last_url_byte() {
        assert_eq!(hosts("http://[2001:db8::1]:8080/x"), vec!["[2001:db8::1]"]);
        // Unclosed, then a character outside URLs: found by policy_props
        // ("http://[秒" cut '秒' in two and panicked).
        assert_eq!(hosts("http://[秒"), vec!["["]);
        assert_eq!(hosts("684 ́http://[가g x"), vec!["["]);
        assert_eq!(hosts("http://[::1 x"), vec!["[::1"]);
    }

    #[test]
    fn host_classes() {
        let d = vec!["huinong.cn".to_string()];
        let s = vec!["bit.ly".to_string(), "t.cn".to_string()];
        assert_eq!(classify("www.huinong.cn", &d, &s), HostKind::Sender);
        assert_eq!(classify("evilhuinong.cn", &d, &s), HostKind::Other);
        assert_eq!(classify("bit.ly", &d, &s), HostKind::Shortener);
        assert_eq!(classify("xn--80ak6aa92e.com", &d, &s), HostKind::Shortener);
        assert_eq!(classify("10.0.0.1", &d, &s), HostKind::Shortener);
    }
}
