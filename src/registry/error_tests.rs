//! Tests of `error.rs`.
use super::*;

#[test]
fn envelope_codes_are_typed() {
    let e = parse_envelope(br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:x"},{"code":"X_NEW"}]}"#);
    assert_eq!(e[0].code, ErrorCode::ManifestBlobUnknown);
    assert_eq!(e[1].code, ErrorCode::Other("X_NEW".into()));
    assert!(parse_envelope(b"<html>").is_empty());
    for c in [
        "BLOB_UNKNOWN",
        "DENIED",
        "UNAUTHORIZED",
        "TOOMANYREQUESTS",
        "MANIFEST_INVALID",
    ] {
        assert_eq!(ErrorCode::parse(c).as_str(), c);
    }
}

#[test]
fn messages_carry_context_and_attempts() {
    let e = RegistryError::Api {
        registry: "r.io".into(),
        repository: "a/b".into(),
        operation: "put manifest `1.0`".into(),
        status: 503,
        errors: vec![ApiError {
            code: ErrorCode::Other("BUSY".into()),
            message: "busy".into(),
        }],
        attempts: 1,
        retry_after: None,
    }
    .with_attempts(5);
    assert_eq!(e.to_string(), "put manifest `1.0` on `r.io/a/b` failed: HTTP 503 Service Unavailable BUSY: busy (after 5 attempts)");
    assert_eq!(e.retry_hint(), Some(Transient { retry_after: None }));
    let u = RegistryError::Unauthorized {
        registry: "r.io".into(),
        repository: "a/b".into(),
        operation: "resolve `r.io/a/b:1`".into(),
        status: 401,
        scope: "repository:a/b:pull".into(),
        failure: AuthFailure::MissingCredentials,
    };
    assert!(
        u.to_string()
            .contains("scope `repository:a/b:pull`): no credentials are configured"),
        "{u}"
    );
    assert_eq!(u.retry_hint(), None);
    assert_eq!(
        u.hints(),
        [Hint::Login {
            registry: "r.io".into()
        }]
    );
}

#[test]
fn certificate_errors_hint_without_naming_flags() {
    let e = RegistryError::Certificate {
        registry: "r.io:5000".into(),
        reason: "it is signed by an unknown issuer".into(),
        trusted: "the system roots (3 certificates)".into(),
    };
    let msg = e.to_string();
    assert!(!msg.contains("--"), "no flag names: {msg}");
    assert_eq!(msg, "TLS certificate of `r.io:5000` is not trusted: it is signed by an unknown issuer. Trusted for this registry: the system roots (3 certificates)");
    assert_eq!(
        e.hints(),
        [
            Hint::TrustCa {
                registry: "r.io:5000".into()
            },
            Hint::InsecureRegistry {
                registry: "r.io:5000".into()
            }
        ]
    );
    let token_endpoint = RegistryError::Unauthorized {
        registry: "r.io".into(),
        repository: "a".into(),
        operation: "x".into(),
        status: 401,
        scope: String::new(),
        failure: AuthFailure::TokenEndpoint {
            status: 400,
            message: String::new(),
        },
    };
    assert!(token_endpoint.hints().is_empty());
}
