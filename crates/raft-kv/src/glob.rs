//! Redis's glob patterns (`KEYS`, `SCAN ... MATCH`) and its integer syntax (`INCR`), so
//! that every node answers them alike.

enum Tok {
    Star,
    Any,
    /// `[...]`: negated, then single bytes and inclusive ranges.
    Class(bool, Vec<(u8, u8)>),
    Lit(u8),
}

fn tokens(p: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                if !matches!(out.last(), Some(Tok::Star)) {
                    out.push(Tok::Star);
                }
            }
            b'?' => out.push(Tok::Any),
            b'\\' if i + 1 < p.len() => {
                i += 1;
                out.push(Tok::Lit(p[i]));
            }
            b'[' => {
                i += 1;
                let neg = p.get(i) == Some(&b'^');
                if neg {
                    i += 1;
                }
                let mut items = Vec::new();
                // An unterminated class runs to the end of the pattern, as in Redis.
                while i < p.len() && p[i] != b']' {
                    if p[i] == b'\\' && i + 1 < p.len() {
                        i += 1;
                        items.push((p[i], p[i]));
                    } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                        let (a, b) = (p[i], p[i + 2]);
                        items.push((a.min(b), a.max(b)));
                        i += 2;
                    } else {
                        items.push((p[i], p[i]));
                    }
                    i += 1;
                }
                out.push(Tok::Class(neg, items));
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    out
}

fn one(t: &Tok, c: u8) -> bool {
    match t {
        Tok::Star => unreachable!("stars are matched by the caller"),
        Tok::Any => true,
        Tok::Lit(l) => *l == c,
        Tok::Class(neg, items) => items.iter().any(|&(a, b)| a <= c && c <= b) != *neg,
    }
}

/// Whether `s` matches the Redis glob `pattern` (`*`, `?`, `[abc]`, `[^a-z]`, `\x`).
/// Linear in `pattern.len() * s.len()` at worst: one backtrack point, the last star.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let toks = tokens(pattern);
    let (mut t, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if t < toks.len() && matches!(toks[t], Tok::Star) {
            star = Some((t, i));
            t += 1;
        } else if t < toks.len() && one(&toks[t], s[i]) {
            t += 1;
            i += 1;
        } else if let Some((st, si)) = star {
            t = st + 1;
            i = si + 1;
            star = Some((st, si + 1));
        } else {
            return false;
        }
    }
    toks[t..].iter().all(|x| matches!(x, Tok::Star))
}

/// The literal bytes every match of `pattern` starts with: a scan need only look at
/// keys from there.
pub fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// `s` read as Redis reads an integer (`string2ll`): optional `-`, digits, no leading
/// zeros, no `+`, no spaces, within i64.
pub fn redis_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) || digits.len() > 19 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_in_redis() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", "") && m("*", "anything"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello") && !m("h*llo", "hellox"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && m("h[b-a]llo", "hallo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h\\*llo", "h*llo") && !m("h\\*llo", "hello"));
        assert!(m("user:*:name", "user:42:name") && !m("user:*:name", "user:42:age"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx") && !m("*a*b*c*", "xxcxxbxxaxx"));
        assert!(m("[abc", "b"), "an unterminated class runs to the end");
        // No exponential blow-up on many stars (Redis's CVE-2022-36021 shape).
        let s = "a".repeat(200);
        assert!(!m(&format!("{}b", "*a".repeat(50)), &s));
    }

    #[test]
    fn the_literal_prefix_stops_at_the_first_special_byte() {
        assert_eq!(literal_prefix("user:*"), "user:");
        assert_eq!(literal_prefix("a?b"), "a");
        assert_eq!(literal_prefix("abc"), "abc");
        assert_eq!(literal_prefix("*"), "");
    }

    #[test]
    fn integers_parse_like_redis_string2ll() {
        assert_eq!(redis_int(b"0"), Some(0));
        assert_eq!(redis_int(b"-12"), Some(-12));
        assert_eq!(redis_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(redis_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in ["", "-", "-0", "01", "+1", " 1", "1 ", "1.5", "9223372036854775808", "abc"] {
            assert_eq!(redis_int(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
