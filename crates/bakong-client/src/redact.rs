//! Secrets out of messages: URLs with credentials shown as `user:***@host`,
//! and free text (a parser's quoted line, a driver's error) cleaned of
//! URL credentials, secret-looking `key = value` pairs and JWTs. Every
//! message that echoes a config value that can carry a credential goes
//! through here (the daemon re-exports it as `bakong_poller::redact`).

/// A URL as it may be shown: a password becomes `***` (`user:***@host`), a
/// user name alone (often a token) becomes `***@host`, and the values of
/// query parameters that look like secrets (`password`, `token`, `key`,
/// `secret`, ...) become `***`. Everything between `://` and the last `@`
/// is user info: generated passwords hold `/`, `?`, `#`, `@` and `:`
/// unencoded, and cutting at the first of them would show the rest. A
/// string that does not parse as a URL (a bad port, a stray character, a
/// password that broke it) shows its scheme, user name and host only
/// (never a path or query that may hold the rest of a password), since those are
/// the ones echoed in error messages. Every message that shows a config
/// value that can carry a credential (`database.url`, `bakong.base_url`,
/// `bakong.proxy`, webhook URLs) goes through this.
pub fn redact_url(url: &str) -> String {
    let (scheme, after) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (userinfo, tail) = match after.rfind('@') {
        Some(at) => (Some(&after[..at]), &after[at + 1..]),
        None => (None, after),
    };
    let (host, rest) = tail.split_at(tail.find(['/', '?', '#']).unwrap_or(tail.len()));
    let parses = url::Url::parse(url).is_ok();
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if let Some(u) = userinfo {
        match u.split_once(':') {
            // The user name is shown when it is plainly one.
            Some((user, _)) if !user.is_empty() && !user.contains(['/', '?', '#']) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            _ => out.push_str("***@"),
        }
    }
    out.push_str(host);
    if !parses {
        return out;
    }
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let parts: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&parts.join("&"));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
        }
        None => out.push_str(rest),
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !n.ends_with("_file")
        && [
            "pass",
            "pwd",
            "token",
            "secret",
            "key",
            "auth",
            "credential",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// Redacts secrets inside free text (an error from the TOML parser, the
/// database driver or the HTTP client that quotes a value or a line of the
/// config file): the credentials of every URL in it, `key = value` lines
/// whose key names a secret (`token = "..."`, `secret = ...`), and
/// anything shaped like a JWT.
pub fn redact_text(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(redact_line).collect();
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn redact_line(line: &str) -> String {
    // `token = "eyJ..."`, as the TOML parser quotes a line of the file.
    if let Some((k, _)) = line.split_once('=') {
        let key = k
            .trim()
            .trim_start_matches(|c: char| c == '|' || c.is_ascii_digit() || c.is_whitespace())
            .trim();
        let last = key.rsplit('.').next().unwrap_or(key);
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && is_secret_name(last)
        {
            return format!("{}= \"***\"", &line[..k.len()]);
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        // The URL starts at its scheme, just before "://".
        // Measured in characters: the one before the scheme may be
        // multi-byte (Khmer text right before `https://`).
        let scheme_start = rest[..i]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map(|(j, c)| j + c.len_utf8())
            .unwrap_or(0);
        let ends_url = |c: char| c.is_whitespace() || "\"'`<>(),;".contains(c);
        let mut url_end = rest[i..]
            .find(ends_url)
            .map(|j| i + j)
            .unwrap_or(rest.len());
        // A password may hold a character that ends a URL in text (`'`,
        // `(`, `,`): an `@` later in the same word means the user info
        // goes on to it, and the URL to the end of what follows it.
        let word_end = rest[i..]
            .find(|c: char| c.is_whitespace() || "\"`<>".contains(c))
            .map(|j| i + j)
            .unwrap_or(rest.len());
        if let Some(at) = rest[url_end..word_end].rfind('@') {
            let after = url_end + at + 1;
            url_end = rest[after..]
                .find(ends_url)
                .map(|j| after + j)
                .unwrap_or(rest.len());
        }
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_url(&rest[scheme_start..url_end]));
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    redact_jwts(&out)
}

/// Replaces JWT-shaped words (`eyJ` header, three base64url parts) by `***`.
fn redact_jwts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("eyJ") {
        let len = rest[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.=".contains(c)))
            .unwrap_or(rest.len() - i);
        let word = &rest[i..i + len];
        out.push_str(&rest[..i]);
        if word.matches('.').count() >= 2 {
            out.push_str("***");
        } else {
            out.push_str(word);
        }
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pieces that steer arbitrary strings toward the parser's branches:
    /// schemes, separators, multi-byte characters right before them.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("://".to_string()),
            Just("@".to_string()),
            Just(":".to_string()),
            Just("/".to_string()),
            Just("?".to_string()),
            Just("#".to_string()),
            Just("=".to_string()),
            Just("&".to_string()),
            Just("eyJ".to_string()),
            Just(".".to_string()),
            Just("token = ".to_string()),
            Just("ខ្មែរ".to_string()),
            Just("é".to_string()),
            Just("😀".to_string()),
            Just("https".to_string()),
            "\\PC{0,4}",
            any::<char>().prop_map(String::from),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(piece(), 0..12).prop_map(|v| v.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn redaction_never_panics_on_any_unicode_text(s in text()) {
            let _ = redact_text(&s);
            let _ = redact_url(&s);
        }
    }

    /// Generated passwords hold characters a URL uses as delimiters.
    const SPECIAL: [&str; 6] = ["/", "?", "#", "@", ":", "/?#@:"];

    fn urls_with(pw: &str) -> Vec<String> {
        vec![
            format!("postgres://app:{pw}@db.example:5432/payments?sslmode=require"),
            format!("postgresql://app:{pw}@db.example/payments"),
            format!("http://ops:{pw}@127.0.0.1:3128"),
            format!("socks5://ops:{pw}@proxy.example:1080/"),
            format!("https://hook:{pw}@hooks.example/bakong/events?x=1#f"),
            format!("postgres://app:{pw}@db.example:99999/payments"),
        ]
    }

    #[test]
    fn passwords_with_url_delimiters_are_redacted_up_to_the_last_at() {
        for c in SPECIAL {
            let pw = format!("Xk7q{c}Zr9w");
            for url in urls_with(&pw) {
                for shown in [
                    redact_url(&url),
                    redact_text(&format!("error: {url} refused")),
                ] {
                    assert!(
                        !shown.contains("Xk7q") && !shown.contains("Zr9w"),
                        "{url} -> {shown}"
                    );
                    assert!(shown.contains("***"), "{url} -> {shown}");
                    assert!(
                        shown.contains("example") || shown.contains("127.0.0.1"),
                        "{url} -> {shown}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_user_name_alone_is_taken_for_a_token() {
        for c in SPECIAL {
            let shown = redact_url(&format!("https://Xk7q{c}Zr9w@hooks.example/bakong"));
            assert!(!shown.contains("Zr9w"), "{shown}");
        }
        assert_eq!(
            redact_url("https://tok3n@hooks.example/b"),
            "https://***@hooks.example/b"
        );
    }

    #[test]
    fn an_unparsable_url_shows_its_scheme_and_host_only() {
        let shown = redact_url("postgres://app:Xk7q/Zr9w@db.example:5432/payments?sslmode=x");
        assert_eq!(shown, "postgres://app:***@db.example:5432");
        let shown = redact_url("http://ops:Xk7q#Zr9w@127.0.0.1:99999/p");
        assert_eq!(shown, "http://ops:***@127.0.0.1:99999");
        // A URL that parses keeps its path and query.
        let shown = redact_url("postgres://app:s3cret@db.example/shop?sslmode=require");
        assert_eq!(shown, "postgres://app:***@db.example/shop?sslmode=require");
        assert_eq!(
            redact_url("https://api-bakong.nbc.gov.kh/v1"),
            "https://api-bakong.nbc.gov.kh/v1"
        );
    }

    proptest! {
        #[test]
        fn no_password_survives_whatever_its_characters(
            pw in "[A-Za-z0-9/?#@:%!$&'()*+,;=._~-]{1,12}",
            i in 0usize..6,
        ) {
            let pw = format!("Xk7q{pw}Zr9w");
            let url = urls_with(&pw)[i].clone();
            for shown in [redact_url(&url), redact_text(&url)] {
                prop_assert!(!shown.contains("Xk7q") && !shown.contains("Zr9w"), "{} -> {}", url, shown);
            }
        }
    }

    #[test]
    fn khmer_text_right_before_a_url_is_redacted_without_a_panic() {
        let page = "<p>សូមអភ័យទោសhttps://user:S3cret@api-bakong.nbc.gov.kh/v1 បរាជ័យ</p>";
        let out = redact_text(page);
        assert!(!out.contains("S3cret"), "{out}");
        assert!(out.contains("សូមអភ័យទោស"), "{out}");
        for s in [
            "ខ://x",
            "ខ://u:p@h",
            "é://",
            "😀https://a:b@c",
            "ááá://",
            "x ខhttps://u:pw@h/p?token=t#f",
        ] {
            let _ = redact_text(s);
            let _ = redact_url(s);
        }
    }
}
