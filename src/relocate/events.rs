//! Events: what the engine tells a reporter while it works.
//!
//! Ordering, guaranteed: for each image, `ImageStarted` comes first and
//! `ImageFinished` last; every `Planned`, `Transfer`, `NodeFinished` and
//! `Progress` event that concerns the image comes between them. `Planned`
//! comes once, after every image is resolved and walked and before anything
//! is copied. Events are delivered in the order they happen, on a thread of
//! their own off the async runtime: a slow reporter delays reporting, never
//! a transfer. A call returns after its reporter has seen its last event
//! (`Engine::prepare`, always followed by `Engine::execute`, leaves that
//! wait to it).
//! Referrers (signatures, attestations, SBOMs) come after the images:
//! `ReferrersPlanned` right after `Planned`, and each `ReferrerFinished`
//! after the `ImageFinished` of every image (a referrer is pushed only once
//! its subject is in the target), before the call returns. An archive sends
//! them once the file is written (action `Copy`); an import, which plans
//! nothing ahead, sends no `ReferrersPlanned`, and its result lists what was
//! left behind. A bundle index's referrers come after `ImageFinished` of
//! every image and before `Pushed`.
//!
//! `Fallback` and `Pushed`, the two events outside a plan or a copy, go the
//! same way, after every event before them; the call waits until each is
//! seen.
//!
//! A plan that is not carried out (a dry run, `Relocator::plan_fixup`) ends
//! with `Planned`. A plan that fails ends each image with an `ImageFinished`
//! whose `error` is that image's own cause when it failed, and otherwise
//! says that it was not relocated because other images failed.
//!
//! A copy finishes each image on its own: its `ImageFinished` comes as soon
//! as every object of its graph is in the target, or as soon as the objects
//! that could be done are and one has failed, while other images' transfers
//! go on. A failed image's `error` holds its own causes (an object several
//! images share is a cause of each); an image that did not fail is reported
//! relocated. After a cancellation, the images not yet finished end with
//! `error` "cancelled". An image is never reported with another's error.

use crate::bundle::ImageKey;
use crate::oci::Descriptor;
use serde::Serialize;
use std::sync::Arc;

/// What the engine does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stream it from the source into the target.
    Copy,
    /// Mount it from another repository of the same registry.
    Mount,
    /// Push it (a manifest, as fetched, or a filtered index).
    Push,
    /// Nothing to do: the target already has it.
    SkipPresent,
    /// Not copied: a foreign (non-distributable) layer, fetched from its `urls`.
    SkipForeign,
}

impl Action {
    /// A short word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Copy => "copy",
            Action::Mount => "mount",
            Action::Push => "push",
            Action::SkipPresent => "skip (present)",
            Action::SkipForeign => "skip (foreign)",
        }
    }
}

/// What kind of object a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// An index or manifest list.
    Index,
    /// An image manifest.
    Manifest,
    /// An image config blob.
    Config,
    /// A layer blob.
    Layer,
}

/// One object of an image's graph, as the plan sees it and as it progresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Index, manifest, config or layer.
    pub kind: NodeKind,
    /// Media type, digest and size.
    pub descriptor: Descriptor,
    /// What is done with it.
    pub action: Action,
    /// Whether it is done.
    pub done: bool,
    /// The error, if it failed.
    pub error: Option<String>,
    /// What it refers to (for an index: manifests; for a manifest: config and layers).
    pub children: Vec<Node>,
}

impl Node {
    pub(crate) fn visit_mut(&mut self, f: &mut impl FnMut(&mut Node)) {
        f(self);
        for c in &mut self.children {
            c.visit_mut(f);
        }
    }

    /// Every node of the tree, this one first.
    pub fn nodes(&self) -> Vec<&Node> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.nodes());
        }
        out
    }
}

/// One image and its graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageTree {
    /// Which image of the bundle.
    #[serde(serialize_with = "key_string")]
    pub key: ImageKey,
    /// The reference as the bundle writes it.
    pub image: String,
    /// The reference it was copied from, by digest.
    pub source: String,
    /// The root manifest or index.
    pub root: Node,
}

fn key_string<S: serde::Serializer>(k: &ImageKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_string())
}

/// Something that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Work on an image began.
    ImageStarted {
        /// Which image.
        #[serde(serialize_with = "key_string")]
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
    },
    /// Every image is resolved and walked: the whole plan, before any copy.
    Planned {
        /// The images and their graphs.
        images: Arc<Vec<ImageTree>>,
    },
    /// Bytes moved in one blob transfer (sent at most every MiB, and at the end).
    Transfer {
        /// The blob.
        digest: String,
        /// Bytes so far in this attempt.
        done: u64,
        /// Its size.
        total: u64,
    },
    /// One object is done, or failed.
    NodeFinished {
        /// Its digest.
        digest: String,
        /// What was done. For a blob this can differ from the action in
        /// `Planned`: a blob planned as a copy or a mount, that the target
        /// turns out to have, finishes as `SkipPresent`.
        action: Action,
        /// The error, if it failed.
        error: Option<String>,
    },
    /// The current state of the graphs an object's end changed: those of
    /// the images that hold it (sent after each `NodeFinished`).
    Progress {
        /// Those images and their graphs.
        images: Arc<Vec<ImageTree>>,
    },
    /// Work on an image ended.
    ImageFinished {
        /// Which image.
        #[serde(serialize_with = "key_string")]
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
        /// Where it now is, by digest, when it succeeded.
        relocated: Option<String>,
        /// Its own error, when it failed.
        error: Option<String>,
        /// Why it was stopped without failing: `other images failed` (a
        /// failed plan relocates nothing), or `cancelled`.
        stopped: Option<String>,
    },
    /// The referrers found for the plan's manifests (sent after `Planned`,
    /// only when there are any): those to carry, and those left behind
    /// with the reason (a platform filter that rewrote the index they refer
    /// to, or nesting past the limit).
    ReferrersPlanned {
        /// Carried (or kept, when the target has them).
        carried: Arc<Vec<crate::relocate::PlannedReferrer>>,
        /// Not carried, each with why.
        left_behind: Arc<Vec<crate::relocate::LeftBehind>>,
        /// Sources whose tag listing or referrers API failed, so that what
        /// they hold was not looked for.
        not_searched: Arc<Vec<crate::relocate::NotSearched>>,
    },
    /// One referrer is in the target, with its tag or its entry in the
    /// referrers tag schema.
    ReferrerFinished {
        /// The manifest it refers to.
        subject: String,
        /// The referrer's digest.
        digest: String,
        /// `Push`, `SkipPresent` when the target had it, or `Copy` when
        /// written into an archive.
        action: Action,
    },
    /// A cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`) in the target
    /// names another manifest (another signer's): it is kept, not replaced,
    /// and the referrer is in the target by its digest only.
    ReferrerTagKept {
        /// The tag.
        tag: String,
        /// The referrer carried.
        digest: String,
        /// What the tag names in the target, kept.
        kept: String,
    },
    /// Push took a fallback because the registry refused the preferred form.
    Fallback {
        /// What was refused and what is used instead.
        message: String,
    },
    /// The bundle index was pushed.
    Pushed {
        /// The reference pushed to.
        reference: String,
        /// The index's descriptor.
        descriptor: Descriptor,
    },
}

/// Receives events. Implemented for every `Fn(&Event) + Send + Sync`.
pub trait Reporter: Send + Sync {
    /// Called once per event, in order.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Reporter for F {
    fn on_event(&self, event: &Event) {
        self(event);
    }
}

/// Sends events to a reporter on a thread of its own, off the async
/// runtime: a slow reporter delays reporting, never a transfer. One per
/// engine, so that every call's events reach the reporter in the order they
/// happen; clones share the thread, which ends when the last clone is
/// dropped.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: Option<std::sync::mpsc::Sender<Message>>,
}

enum Message {
    Event(Event),
    /// Answered once every message sent before it is delivered.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Sink {
    /// A sink that reports nothing.
    pub(crate) fn none() -> Sink {
        Sink { tx: None }
    }

    /// A sink delivering to `reporter` on a new thread (none when no thread
    /// can be had: reporting nothing rather than failing the work).
    pub(crate) fn start(reporter: Option<Arc<dyn Reporter>>) -> Sink {
        let Some(reporter) = reporter else {
            return Sink::none();
        };
        let (tx, rx) = std::sync::mpsc::channel::<Message>();
        let spawned = std::thread::Builder::new()
            .name("cnab-oci-reporter".into())
            .spawn(move || {
                while let Ok(m) = rx.recv() {
                    match m {
                        Message::Event(e) => reporter.on_event(&e),
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => Sink { tx: Some(tx) },
            Err(_) => Sink::none(),
        }
    }

    pub(crate) fn send(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Event(event));
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Waits until the reporter has seen every event sent before: a call
    /// returns only after its reporter has seen its last event.
    pub(crate) async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, seen) = tokio::sync::oneshot::channel();
            if tx.send(Message::Flush(done)).is_ok() {
                let _ = seen.await;
            }
        }
    }
}
