//! Client scopes: a [`Client::scoped`] client shares connections, tokens,
//! credentials and accounting with the client it came from, but keeps its own
//! record of open upload sessions, so each scope cancels only its own.

use crate::harness::client::{client_for, repo};
use crate::harness::fake::{respond, Fake, Recorded};
use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::registry::{Client, ClientConfig, Repository, RequestKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn fake_client() -> Client {
    let mut c = ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    };
    c.retry.base_delay = Duration::from_millis(5);
    Client::new(c).unwrap()
}

/// Two scopes' sessions are tracked apart: each scope's
/// `cancel_open_uploads` deletes exactly the sessions opened through it (and
/// its clones), and finished or cancelled sessions are not cancelled again.
#[tokio::test]
async fn scopes_cancel_only_their_own_upload_sessions() {
    let opened = AtomicUsize::new(0);
    let fake = Fake::start(move |r: &Recorded, _| match r.method.as_str() {
        "POST" => {
            let n = opened.fetch_add(1, Ordering::SeqCst);
            respond(
                202,
                &[("location", &format!("/v2/a/blobs/uploads/s{n}"))],
                "",
            )
        }
        "DELETE" => respond(204, &[], ""),
        _ => respond(404, &[], ""),
    });
    let r = Repository {
        registry: fake.host(),
        path: "a".into(),
    };
    let base = fake_client();
    let clone = base.clone();
    let scope = base.scoped();
    let inner = scope.scoped();

    let s0 = base.start_upload(&r).await.unwrap();
    let s1 = scope.start_upload(&r).await.unwrap();
    let s2 = clone.start_upload(&r).await.unwrap();
    let s3 = inner.start_upload(&r).await.unwrap();
    let s4 = scope.start_upload(&r).await.unwrap();
    // A session cancelled through its own scope is no longer open.
    scope.cancel_upload(&s4).await.unwrap();
    let deletes = |f: &Fake| -> Vec<String> {
        let mut d: Vec<String> = f
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path().to_owned())
            .collect();
        d.sort();
        d
    };
    let path = |s: &cnab_oci::registry::UploadSession| s.location.path().to_owned();
    assert_eq!(deletes(&fake), [path(&s4)]);

    assert_eq!(scope.cancel_open_uploads().await, 1, "s1 only");
    assert_eq!(deletes(&fake), [path(&s1), path(&s4)]);
    assert_eq!(
        base.cancel_open_uploads().await,
        2,
        "s0, and s2 of its clone"
    );
    assert_eq!(deletes(&fake), [path(&s0), path(&s1), path(&s2), path(&s4)]);
    assert_eq!(
        clone.cancel_open_uploads().await,
        0,
        "the clone shares the record"
    );
    assert_eq!(scope.cancel_open_uploads().await, 0);
    assert_eq!(inner.cancel_open_uploads().await, 1, "s3");
    assert_eq!(
        deletes(&fake),
        [path(&s0), path(&s1), path(&s2), path(&s3), path(&s4)]
    );

    // Accounting is shared by all of them.
    let stats = &base.stats()[&fake.host()];
    assert_eq!(stats.count(RequestKind::UploadStart), 5);
    assert_eq!(stats.count(RequestKind::UploadCancel), 5);
    assert_eq!(inner.stats(), base.stats());
}

/// A scoped client uses the tokens, credentials and learned auth scheme of
/// the client it came from: its first request needs no challenge and no new
/// token.
#[tokio::test]
async fn scopes_share_tokens_and_credentials() {
    let reg = Registry::token();
    let base = client_for(&reg);
    let r = repo(&reg, "scopes/shared");
    let d = base
        .push_blob(&r, Bytes::from_static(b"shared"), "x")
        .await
        .unwrap();
    // A pull token (blob_exists asks for pull only).
    assert_eq!(base.blob_exists(&r, &d.digest).await.unwrap(), Some(6));
    let tokens = reg.token.as_ref().unwrap().requests().len();
    let before = base.stats()[&reg.host()].clone();

    let scope = base.scoped();
    assert_eq!(scope.blob_exists(&r, &d.digest).await.unwrap(), Some(6));
    assert_eq!(
        reg.token.as_ref().unwrap().requests().len(),
        tokens,
        "no new token"
    );
    let after = scope.stats()[&reg.host()].clone();
    assert_eq!(
        after.total_requests() - before.total_requests(),
        1,
        "one HEAD"
    );
    assert_eq!(
        after.count(RequestKind::BlobHead) - before.count(RequestKind::BlobHead),
        1,
        "with the shared token, no challenge"
    );
}
