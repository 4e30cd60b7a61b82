//! Registry authentication: `WWW-Authenticate` challenges, token scopes, and a
//! token cache keyed by (registry, scope set) in which each fetch is
//! single-flight.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Access to one repository, as a token scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The repository path (`library/nginx`).
    pub repository: String,
    /// Whether push is needed as well as pull.
    pub push: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: false,
        }
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: true,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions = if self.push { "pull,push" } else { "pull" };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

/// A normalised set of scopes: one entry per repository, push winning, sorted.
pub fn normalise(scopes: &[Scope]) -> Vec<Scope> {
    let mut by_repo: HashMap<&str, bool> = HashMap::new();
    for s in scopes {
        *by_repo.entry(&s.repository).or_insert(false) |= s.push;
    }
    let set: BTreeSet<Scope> = by_repo
        .into_iter()
        .map(|(r, push)| Scope {
            repository: r.to_owned(),
            push,
        })
        .collect();
    set.into_iter().collect()
}

/// The scopes as one string, for messages and cache keys.
pub fn scope_string(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Bearer tokens by (registry, scope set). A slot's lock is held while its
/// token is fetched, so concurrent users of the same scopes wait for one fetch.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// How early a token is renewed before it expires, to cover clock skew and the
/// time a request takes.
const RENEW_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    fn slot(&self, registry: &str, scopes: &str) -> Slot {
        self.slots
            .lock()
            .expect("token cache")
            .entry((registry.to_owned(), scopes.to_owned()))
            .or_default()
            .clone()
    }

    /// The cached token, or the result of `fetch` (which then is cached for
    /// its lifetime). Only one `fetch` runs per key at a time.
    pub(crate) async fn get_or_fetch<F, Fut, E>(
        &self,
        registry: &str,
        scopes: &str,
        fetch: F,
    ) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), E>>,
    {
        let slot = self.slot(registry, scopes);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = fetch().await?;
        *guard = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_MARGIN),
        });
        Ok(token)
    }

    /// Forgets the token, after the registry refused it.
    pub(crate) async fn invalidate(&self, registry: &str, scopes: &str) {
        let slot = self.slot(registry, scopes);
        *slot.lock().await = None;
    }
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

    #[test]
    fn scopes_normalise_and_print() {
        let s = normalise(&[
            Scope::pull("b"),
            Scope::push("a"),
            Scope::pull("a"),
            Scope::pull("b"),
        ]);
        assert_eq!(scope_string(&s), "repository:a:pull,push repository:b:pull");
    }

    #[tokio::test]
    async fn concurrent_fetches_are_single_flight() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch("r", "s", || async {
                            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, ()>(("tok".to_owned(), Duration::from_secs(300)))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok("tok".to_owned()));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        cache.invalidate("r", "s").await;
        let again = cache
            .get_or_fetch("r", "s", || async {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(("tok2".to_owned(), Duration::from_secs(300)))
            })
            .await;
        assert_eq!(again, Ok("tok2".to_owned()));
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
