//! Semantic Versioning 2.0.0 grammar check (no ordering is needed here).

/// Whether `s` is a SemVer 2.0.0 version: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, with
/// no leading zeros in numeric parts.
pub(crate) fn is_semver(s: &str) -> bool {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 || !nums.iter().all(|n| numeric(n)) {
        return false;
    }
    if let Some(pre) = pre {
        let ok = pre
            .split('.')
            .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)));
        if !ok {
            return false;
        }
    }
    build.is_none_or(|b| b.split('.').all(ident))
}

fn numeric(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
}

fn ident(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_semver;

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "0.1.0",
            "1.0.0-alpha.1",
            "1.0.0+build.5",
            "1.2.3-rc.1+x-y",
            "10.20.30",
            "1.0.0-0a",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "1.0",
            "v1.0.0",
            "01.0.0",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0+",
            "latest",
            "1.0.0-a..b",
            "",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }
}
