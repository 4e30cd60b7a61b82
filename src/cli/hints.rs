//! The command line's words for the library's [`Hint`]s: the flags and
//! commands of `cnab-oci` that do what a hint says.

use cnab_oci::registry::{RegistryError, DOCKER_CERTS_DIR};
use cnab_oci::Hint;

/// What to tell the user for hint `h`, naming this command's flags.
pub(crate) fn render(h: &Hint) -> String {
    match h {
        Hint::TrustCa { registry } => format!(
            "pass its CA certificate with --ca-cert FILE, or put it in {DOCKER_CERTS_DIR}/{registry}/ca.crt"
        ),
        Hint::ClientCertificate { registry } => format!(
            "put its client certificate and key in {DOCKER_CERTS_DIR}/{registry}/client.cert and client.key"
        ),
        Hint::InsecureRegistry { registry } => {
            format!("to skip TLS verification, or to speak plain HTTP to it, name it in --insecure-registries {registry}")
        }
        Hint::Login { registry } => format!(
            "log in with `docker login {registry}` or configure a credential helper"
        ),
        Hint::UpdateBundle => "run with --auto-update-bundle to update the bundle instead".into(),
        Hint::AllowFallbacks => "pass --allow-fallbacks true to let push try other forms".into(),
        Hint::SetBundleField { key, field } => format!("set `{field}` of {key} in the bundle"),
        Hint::CopyForeignLayers => {
            "pass --include-foreign-layers to copy the foreign layers the source has".into()
        }
        Hint::SkipReferrers => {
            "pass --no-referrers to relocate without signatures, attestations and SBOMs".into()
        }
        Hint::RepushImage { repository } => format!(
            "re-push it as Docker schema 2, for example `skopeo copy --format v2s2 docker://{repository}:TAG docker://{repository}:TAG`"
        ),
        // A hint this build does not know yet: say it as data.
        other => format!("{other:?}"),
    }
}

/// Every hint of the errors in `e`'s chain, in order, each once.
pub(crate) fn of(e: &anyhow::Error) -> Vec<Hint> {
    let mut out: Vec<Hint> = Vec::new();
    for cause in e.chain() {
        let found = if let Some(r) = cause.downcast_ref::<RegistryError>() {
            r.hints()
        } else if let Some(e) = cause.downcast_ref::<cnab_oci::Error>() {
            e.hints()
        } else {
            Vec::new()
        };
        for h in found {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_flags() {
        let r = "r.io:5000".to_owned();
        assert_eq!(
            render(&Hint::TrustCa {
                registry: r.clone()
            }),
            "pass its CA certificate with --ca-cert FILE, or put it in /etc/docker/certs.d/r.io:5000/ca.crt"
        );
        assert_eq!(
            render(&Hint::InsecureRegistry {
                registry: r.clone()
            }),
            "to skip TLS verification, or to speak plain HTTP to it, name it in --insecure-registries r.io:5000"
        );
        assert_eq!(
            render(&Hint::ClientCertificate {
                registry: r.clone()
            }),
            "put its client certificate and key in /etc/docker/certs.d/r.io:5000/client.cert and client.key"
        );
        assert_eq!(
            render(&Hint::Login { registry: r }),
            "log in with `docker login r.io:5000` or configure a credential helper"
        );
        assert_eq!(
            render(&Hint::UpdateBundle),
            "run with --auto-update-bundle to update the bundle instead"
        );
        assert_eq!(
            render(&Hint::AllowFallbacks),
            "pass --allow-fallbacks true to let push try other forms"
        );
        assert_eq!(
            render(&Hint::SetBundleField {
                key: "images[\"db\"]".into(),
                field: "size".into()
            }),
            "set `size` of images[\"db\"] in the bundle"
        );
    }

    #[test]
    fn hints_are_found_through_the_chain() {
        let cert = || RegistryError::Certificate {
            registry: "r.io".into(),
            reason: "it is signed by an unknown issuer".into(),
            trusted: "the system roots (3 certificates)".into(),
        };
        let direct = anyhow::Error::new(cert()).context("cannot pull");
        let wrapped = anyhow::Error::new(cnab_oci::Error::Registry(cert())).context("cannot pull");
        for e in [direct, wrapped] {
            assert_eq!(
                of(&e),
                [
                    Hint::TrustCa {
                        registry: "r.io".into()
                    },
                    Hint::InsecureRegistry {
                        registry: "r.io".into()
                    }
                ]
            );
        }
        assert!(of(&anyhow::anyhow!("plain")).is_empty());
    }
}
