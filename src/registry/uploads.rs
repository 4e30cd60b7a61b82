//! The upload sessions a client opened and has not closed: what an
//! interrupted run leaves to cancel. Every client has a tracker; clones share
//! it, and [`Client::scoped`](super::Client::scoped) starts a fresh one, so
//! that each scope cancels only its own sessions.

use super::UploadSession;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::Mutex;

/// Open upload sessions, by the URL they were opened with.
#[derive(Debug, Default)]
pub(crate) struct UploadTracker {
    open: Mutex<HashMap<String, UploadSession>>,
}

impl UploadTracker {
    /// Records `s` as open.
    pub(crate) fn opened(&self, s: &UploadSession) {
        self.open
            .lock()
            .expect("uploads")
            .insert(s.location.to_string(), s.clone());
    }

    /// Records that open session `s` now continues at `now` (chunked uploads:
    /// each `PATCH` may answer a new `Location`). A session this tracker did
    /// not open is ignored.
    pub(crate) fn moved(&self, s: &UploadSession, now: &Url) {
        if let Some(e) = self
            .open
            .lock()
            .expect("uploads")
            .get_mut(s.location.as_str())
        {
            e.location = now.clone();
        }
    }

    /// Records `s` as finished or cancelled.
    pub(crate) fn closed(&self, s: &UploadSession) {
        self.open
            .lock()
            .expect("uploads")
            .remove(s.location.as_str());
    }

    /// The sessions open now, each at its latest `Location`.
    pub(crate) fn open(&self) -> Vec<UploadSession> {
        self.open
            .lock()
            .expect("uploads")
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Repository;

    fn session(n: u32) -> UploadSession {
        UploadSession {
            repository: Repository {
                registry: "r.io".into(),
                path: "a".into(),
            },
            location: Url::parse(&format!("https://r.io/v2/a/blobs/uploads/{n}")).unwrap(),
        }
    }

    #[test]
    fn sessions_open_move_and_close() {
        let t = UploadTracker::default();
        let (a, b) = (session(1), session(2));
        t.opened(&a);
        t.opened(&b);
        let later = Url::parse("https://r.io/v2/a/blobs/uploads/1?part=2").unwrap();
        t.moved(&a, &later);
        t.closed(&b);
        assert_eq!(
            t.open().iter().map(|s| &s.location).collect::<Vec<_>>(),
            [&later]
        );
        // Closing goes by the URL the session was opened with.
        t.closed(&a);
        assert!(t.open().is_empty());
        t.moved(&a, &later);
        assert!(t.open().is_empty(), "an unknown session is not tracked");
    }
}
