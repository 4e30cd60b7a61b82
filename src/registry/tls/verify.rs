//! The server-certificate check, and certificate errors in words.
//!
//! [`Verifier`] is webpki's check (rustls' [`WebPkiServerVerifier`]) plus the
//! one case Docker, Go and curl accept and webpki refuses: a self-signed
//! certificate with `CA:TRUE`, as `openssl req -x509` makes by default and
//! Docker's documentation shows, presented by the server as its own while the
//! user gave that very certificate as trusted. webpki stops at "CA used as
//! end entity" before it looks at the trust anchors; Go trusts a leaf that is
//! itself in the root pool. So, only then, and only when the presented
//! certificate is byte-equal to one the user gave, the certificate is checked
//! here instead: its validity period, that it names the server, and that its
//! extended key usage (if any) allows a TLS server. The handshake signature is
//! always verified by rustls with the certificate's key.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x509_cert::der::oid::db::rfc5280::{
    ANY_EXTENDED_KEY_USAGE, ID_CE_EXT_KEY_USAGE, ID_KP_SERVER_AUTH,
};
use x509_cert::der::Decode as _;

/// webpki's verifier, and the given self-signed certificates it refuses.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// webpki over the host's roots; `None` when there are no roots at all
    /// (then every certificate has an unknown issuer).
    inner: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates the user gave as trusted, by bytes.
    given: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// A verifier over `roots` that also accepts any of `given` presented as
    /// the server's own certificate (see the module docs).
    pub(crate) fn new(
        roots: rustls::RootCertStore,
        given: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Verifier, String> {
        let inner = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Verifier {
            inner,
            given,
            provider,
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(CertificateError::UnknownIssuer.into());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self.given.iter().any(|g| g.as_ref() == end_entity.as_ref()) =>
            {
                verify_given(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether webpki refused a certificate for being a CA used as an end entity.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    webpki_error(e).is_some_and(|w| matches!(w, webpki::Error::CaUsedAsEndEntity))
}

fn webpki_error(e: &rustls::Error) -> Option<&webpki::Error> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => o.0.downcast_ref(),
        _ => None,
    }
}

fn unix(t: x509_cert::time::Time) -> UnixTime {
    UnixTime::since_unix_epoch(t.to_unix_duration())
}

/// The checks webpki would have made of a given self-signed certificate had
/// it not stopped at `CA:TRUE`: validity period, name, key purpose.
fn verify_given(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| CertificateError::BadEncoding)?;
    let tbs = &parsed.tbs_certificate;
    let not_before = unix(tbs.validity.not_before);
    let not_after = unix(tbs.validity.not_after);
    if now.as_secs() < not_before.as_secs() {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
        .into());
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
        .into());
    }
    rustls::client::verify_server_name(&ParsedCertificate::try_from(cert)?, server_name)?;
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == ID_CE_EXT_KEY_USAGE {
            let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                .map_err(|_| CertificateError::BadEncoding)?;
            if !eku
                .0
                .iter()
                .any(|p| *p == ID_KP_SERVER_AUTH || *p == ANY_EXTENDED_KEY_USAGE)
            {
                return Err(CertificateError::InvalidPurpose.into());
            }
        }
    }
    Ok(())
}

fn date(t: UnixTime) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

/// A name the certificate presents, as written in it: webpki reports each
/// in its `Debug` form (`DnsName("localhost")`, `IpAddress(127.0.0.1)`).
fn presented_name(n: &str) -> &str {
    for kind in ["DnsName", "IpAddress", "UniformResourceIdentifier"] {
        if let Some(inner) = n
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        {
            return inner.trim_matches('"');
        }
    }
    n
}

/// Why a certificate was refused, in words.
pub(crate) fn cert_words(e: &CertificateError) -> String {
    use CertificateError as C;
    #[allow(deprecated)]
    let s = match e {
        C::BadEncoding => "the certificate is not valid DER".into(),
        C::Expired => "the certificate has expired".into(),
        C::ExpiredContext { time, not_after } => format!(
            "the certificate expired on {} (it is now {})",
            date(*not_after),
            date(*time)
        ),
        C::NotValidYet => "the certificate is not valid yet".into(),
        C::NotValidYetContext { time, not_before } => format!(
            "the certificate is not valid before {} (it is now {})",
            date(*not_before),
            date(*time)
        ),
        C::Revoked => "the certificate has been revoked".into(),
        C::UnhandledCriticalExtension => {
            "the certificate has a critical extension that is not understood".into()
        }
        C::UnknownIssuer => {
            "it is signed by an unknown issuer: no trusted certificate signed it".into()
        }
        C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => {
            "its revocation status cannot be determined".into()
        }
        C::BadSignature => "its signature does not verify with its issuer's key".into(),
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm that is not supported".into()
        }
        C::NotValidForName => "it is not valid for this registry's name".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names = if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented
                    .iter()
                    .map(|n| format!("`{}`", presented_name(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "it is not valid for `{}`: it names {names}",
                expected.to_str()
            )
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for a TLS server: its extended key usage excludes server authentication".into()
        }
        C::InvalidOcspResponse => "its OCSP response is invalid".into(),
        C::ApplicationVerificationFailure => "the application refused it".into(),
        C::Other(o) => match o.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => "the server presented a CA certificate (CA:TRUE, as `openssl req -x509` makes) as its own, and that certificate is not itself among the trusted ones; a self-signed certificate is trusted when the file that holds it is given as trusted".into(),
            Some(webpki::Error::EndEntityUsedAsCa) => "a certificate of its chain that is not a CA signed it".into(),
            Some(webpki::Error::CertDistrusted) => "it or its issuer is distrusted".into(),
            Some(webpki::Error::NameConstraintViolation) => "it violates its CA's name constraints".into(),
            Some(webpki::Error::PathLenConstraintViolated | webpki::Error::MaximumPathDepthExceeded) => {
                "its chain is longer than its CAs allow".into()
            }
            Some(webpki::Error::UnsupportedCriticalExtension) => {
                "the certificate has a critical extension that is not understood".into()
            }
            Some(webpki::Error::UnsupportedCertVersion) => "the certificate is not an X.509 v3 certificate".into(),
            _ => format!("the certificate verifier refused it ({o})"),
        },
        other => format!("the certificate verifier refused it ({other})"),
    };
    s
}

/// Why a TLS error happened, in words: certificate errors as
/// [`cert_words`], others as rustls says them.
pub(crate) fn words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => cert_words(c),
        other => other.to_string(),
    }
}

/// The alerts a server sends about the client's certificate.
pub(crate) const CLIENT_ALERTS: &[AlertDescription] = &[
    AlertDescription::CertificateRequired,
    AlertDescription::BadCertificate,
    AlertDescription::UnknownCA,
    AlertDescription::CertificateExpired,
    AlertDescription::CertificateRevoked,
    AlertDescription::UnsupportedCertificate,
    AlertDescription::CertificateUnknown,
];

/// What the registry said by `alert` about the client's certificate, given
/// whether one was `sent`: Go's servers answer a missing certificate with
/// `certificate_required` over TLS 1.3 and with `bad_certificate` before.
pub(crate) fn client_alert_words(alert: AlertDescription, sent: bool) -> Option<&'static str> {
    Some(match alert {
        AlertDescription::CertificateRequired | AlertDescription::BadCertificate if !sent => {
            "it requires a client certificate"
        }
        AlertDescription::CertificateRequired => "it requires a client certificate",
        AlertDescription::BadCertificate => "it refused the client certificate (bad certificate)",
        AlertDescription::UnknownCA => "it does not trust the CA of the client certificate",
        AlertDescription::CertificateExpired => {
            "the client certificate has expired or is not valid yet, by the registry's clock"
        }
        AlertDescription::CertificateRevoked => "the client certificate has been revoked",
        AlertDescription::UnsupportedCertificate | AlertDescription::CertificateUnknown => {
            "it refused the client certificate"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    /// openssl's shape: self-signed, CA:TRUE, the names as subjectAltName.
    fn self_signed(
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        edit(&mut p);
        p.self_signed(&key).unwrap().der().clone()
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_owned()).unwrap()
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn a_given_self_signed_certificate_is_checked_for_time_name_and_purpose() {
        let ok = self_signed(&["localhost", "127.0.0.1"], |_| {});
        verify_given(&ok, &name("localhost"), now()).unwrap();
        verify_given(&ok, &name("127.0.0.1"), now()).unwrap();

        let e = verify_given(&ok, &name("registry.example.com"), now()).unwrap_err();
        assert_eq!(
            words(&e),
            "it is not valid for `registry.example.com`: it names `localhost`, `127.0.0.1`"
        );

        let old = self_signed(&["localhost"], |p| {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        });
        let e = verify_given(&old, &name("localhost"), now()).unwrap_err();
        assert!(
            words(&e).starts_with(
                "the certificate expired on Tue, 01 Jan 2002 00:00:00 GMT (it is now "
            ),
            "{}",
            words(&e)
        );

        let future = self_signed(&["localhost"], |p| {
            p.not_before = rcgen::date_time_ymd(4000, 1, 1);
        });
        let e = verify_given(&future, &name("localhost"), now()).unwrap_err();
        assert!(
            words(&e).starts_with("the certificate is not valid before Sat, 01 Jan 4000"),
            "{}",
            words(&e)
        );

        let client_only = self_signed(&["localhost"], |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        });
        let e = verify_given(&client_only, &name("localhost"), now()).unwrap_err();
        assert_eq!(
            words(&e),
            "it is not meant for a TLS server: its extended key usage excludes server authentication"
        );
        let server = self_signed(&["localhost"], |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        });
        verify_given(&server, &name("localhost"), now()).unwrap();
    }

    /// Only a certificate the user gave is accepted past "CA used as end
    /// entity"; any other gets webpki's refusal, in words.
    #[test]
    fn only_the_given_certificate_passes() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let given = self_signed(&["localhost"], |_| {});
        let other = self_signed(&["localhost"], |_| {});
        let mut roots = rustls::RootCertStore::empty();
        roots.add(given.clone()).unwrap();
        let v = Verifier::new(roots, vec![given.clone()], provider).unwrap();
        v.verify_server_cert(&given, &[], &name("localhost"), &[], now())
            .unwrap();
        let e = v
            .verify_server_cert(&other, &[], &name("localhost"), &[], now())
            .unwrap_err();
        assert!(is_ca_used_as_end_entity(&e));
        assert!(
            words(&e).starts_with("the server presented a CA certificate (CA:TRUE"),
            "{}",
            words(&e)
        );
        let e = v
            .verify_server_cert(&given, &[], &name("127.0.0.1"), &[], now())
            .unwrap_err();
        assert_eq!(
            words(&e),
            "it is not valid for `127.0.0.1`: it names `localhost`"
        );

        let empty = Verifier::new(
            rustls::RootCertStore::empty(),
            Vec::new(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap();
        let e = empty
            .verify_server_cert(&given, &[], &name("localhost"), &[], now())
            .unwrap_err();
        assert_eq!(
            words(&e),
            "it is signed by an unknown issuer: no trusted certificate signed it"
        );
    }
}
