//! Links in a body, with or without a scheme, and what their host is:
//! one of the sender's domains (or a subdomain), a shortener/redirector,
//! an IP literal or punycode host, or some other host.
//!
//! Without a scheme a link is recognized when it starts with `www.` or its
//! host ends in a known top-level domain (`jinyun.com/sale`, `x.cn/a`).

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

/// The link starting at token start `i`, if any, and where to go on.
fn link_at<T: AsRef<str>>(text: &str, i: usize, tlds: &[T]) -> (Option<Link>, usize) {
    let b = text.as_bytes();
    let scheme = ["https://", "http://"]
        .into_iter()
        .find(|s| starts_with_ci(&b[i..], s));
    let mut host_start = i + scheme.map_or(0, str::len);
    if scheme.is_some() {
        // Skip user info: in `http://huinong.cn@evil.com/` the host is evil.com.
        let mut end = host_start;
        while end < b.len() && url_byte(b[end]) && !matches!(b[end], b'/' | b'?' | b'#') {
            end += 1;
        }
        if let Some(at) = b[host_start..end].iter().rposition(|c| *c == b'@') {
            host_start += at + 1;
        }
    }
    let mut host_end = host_start;
    if scheme.is_some() && b.get(host_start) == Some(&b'[') {
        while host_end < b.len() && b[host_end] != b']' && url_byte(b[host_end]) {
            host_end += 1;
        }
        // The closing bracket belongs to the host; an unclosed one ends at
        // the last URL byte (stepping past a non-ASCII byte would cut a
        // character in two).
        if b.get(host_end) == Some(&b']') {
            host_end += 1;
        }
    } else {
        while host_end < b.len() && host_byte(b[host_end]) {
            host_end += 1;
        }
        host_end = trim_trailing(b, host_start, host_end);
    }
    let host = &text[host_start..host_end];
    let is_link = if scheme.is_some() {
        !host.is_empty()
    } else {
        match host.rfind('.') {
            None => false,
            Some(dot) => {
                let tld = &host[dot + 1..];
                starts_with_ci(host.as_bytes(), "www.")
                    || tlds.iter().any(|t| t.as_ref().eq_ignore_ascii_case(tld))
            }
        }
    };
    if !is_link {
        return (None, host_end.max(i + 1));
    }
    let end = trim_trailing(b, host_end, path_end(b, host_end));
    let link = Link {
        span: (i, end),
        host: (host_start, host_end),
    };
    (Some(link), end.max(i + 1))
}

/// Finds every link in `text`; `tlds` are lowercase top-level domains that
/// make a scheme-less `name.tld` a link.
pub fn find<T: AsRef<str>>(text: &str, tlds: &[T], out: &mut Vec<Link>) {
    let b = text.as_bytes();
    if text.contains("://") {
        // Scheme links may have hosts without a dot: look at every token.
        let mut i = 0;
        while i < b.len() {
            if !token_start(b, i) {
                i += 1;
                continue;
            }
            let (link, next) = link_at(text, i, tlds);
            out.extend(link);
            i = next;
        }
        return;
    }
    // Otherwise every link has a dot in its host: jump from dot to dot.
    let mut from = 0;
    while let Some(rel) = text[from..].find('.') {
        let dot = from + rel;
        let mut start = dot;
        while start > from && host_byte(b[start - 1]) {
            start -= 1;
        }
        if start < dot && token_start(b, start) {
            let (link, next) = link_at(text, start, tlds);
            out.extend(link);
            from = next.max(dot + 1);
        } else {
            from = dot + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Vec<&str> {
        let tlds: Vec<String> = ["com", "cn", "ly", "co"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut out = Vec::new();
        find(text, &tlds, &mut out);
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
