//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), as registries send them
//! with a `401`.

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower case (`bearer`, `basic`).
    pub scheme: String,
    /// The auth-params in order, names lower case.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses a `WWW-Authenticate` header value (RFC 9110 §11.6.1): one or more
/// challenges, each a scheme followed by comma-separated `name=value` params
/// (values are tokens or quoted strings with `\` escapes). Never panics; what
/// it cannot read it skips.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip = |i: &mut usize, set: &str| {
        while *i < chars.len() && set.contains(chars[*i]) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && is_tchar(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        skip(&mut i, " \t,");
        let word = token(&mut i);
        if word.is_empty() {
            i += 1; // not a token character: skip it
            continue;
        }
        let mut j = i;
        skip(&mut j, " \t");
        if j < chars.len() && chars[j] == '=' {
            // A parameter of the current challenge (or junk before any scheme).
            i = j + 1;
            skip(&mut i, " \t");
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    v.push(chars[i]);
                    i += 1;
                }
                i += 1; // closing quote
                v
            } else {
                let start = i;
                while i < chars.len() && !matches!(chars[i], ',' | ' ' | '\t') {
                    i += 1;
                }
                chars[start..i].iter().collect()
            };
            if let Some(c) = out.last_mut() {
                c.params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
            i = j;
            // A token68 (`Negotiate abc==`) is not used by registries: skip it.
            let mut k = i;
            let t68 = token(&mut k);
            let mut after = k;
            skip(&mut after, "=");
            let mut look = after;
            skip(&mut look, " \t");
            if !t68.is_empty() && after > k && (look >= chars.len() || chars[look] == ',') {
                i = after;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_challenges() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("SERVICE"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/nginx:pull"));

        let c =
            parse_www_authenticate(r#"Basic realm="Registry \"Realm\"", Bearer realm=x,service=y"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("Registry \"Realm\""));
        assert_eq!(
            (c[1].param("realm"), c[1].param("service")),
            (Some("x"), Some("y"))
        );

        let c = parse_www_authenticate("Negotiate abc==, Basic realm=\"r\"");
        assert_eq!(
            c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(),
            ["negotiate", "basic"]
        );
    }

    #[test]
    fn never_panics_on_junk() {
        for junk in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer ,,, =x",
            "é=è",
            "Bearer realm=\"\\",
            "a b c d=",
            "x=\"y",
        ] {
            let _ = parse_www_authenticate(junk);
        }
        assert!(parse_www_authenticate("").is_empty());
    }
}
