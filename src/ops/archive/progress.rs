//! Per-image progress events of an archive.

use crate::archive::format;
use crate::digest::Digest;
use crate::relocate::events::{Action, Event, ImageTree};
use std::collections::HashMap;

/// Per-image progress of the archive: which objects of each image are
/// written, for `Progress` events, and `ImageFinished` once all are.
pub(super) struct Progress {
    trees: Vec<ImageTree>,
    /// Digest → the images (indexes into `trees`) that hold it.
    holders: HashMap<Digest, Vec<usize>>,
    /// Objects still to write, per image.
    left: Vec<usize>,
    finished: Vec<bool>,
}

impl Progress {
    pub(super) fn new(trees: &[ImageTree]) -> Progress {
        let mut holders: HashMap<Digest, Vec<usize>> = HashMap::new();
        let mut left = Vec::new();
        for (i, t) in trees.iter().enumerate() {
            let mut own = std::collections::HashSet::new();
            for n in t.root.nodes() {
                if n.action != Action::SkipForeign && own.insert(n.descriptor.digest.clone()) {
                    holders
                        .entry(n.descriptor.digest.clone())
                        .or_default()
                        .push(i);
                }
            }
            left.push(own.len());
        }
        Progress {
            trees: trees.to_vec(),
            holders,
            left,
            finished: vec![false; trees.len()],
        }
    }

    /// Object `digest` is in the archive (or left out): the events it causes.
    pub(super) fn done(&mut self, digest: &Digest, action: Action) -> Vec<Event> {
        let Some(images) = self.holders.get(digest) else {
            return Vec::new();
        };
        let mut touched = Vec::new();
        for &i in images {
            self.trees[i].root.visit_mut(&mut |n| {
                if n.descriptor.digest == *digest {
                    n.done = true;
                    if action == Action::SkipPresent {
                        n.action = action;
                    }
                }
            });
            self.left[i] = self.left[i].saturating_sub(1);
            touched.push(self.trees[i].clone());
        }
        let mut events = vec![Event::Progress {
            images: std::sync::Arc::new(touched),
        }];
        for &i in images {
            if self.left[i] == 0 && !self.finished[i] {
                self.finished[i] = true;
                events.push(self.image_finished(i));
            }
        }
        events
    }

    /// `ImageFinished` for every image not yet finished (those with no
    /// object of their own to write).
    pub(super) fn finish(&mut self) -> Vec<Event> {
        let open: Vec<usize> = (0..self.trees.len())
            .filter(|&i| !std::mem::replace(&mut self.finished[i], true))
            .collect();
        open.into_iter().map(|i| self.image_finished(i)).collect()
    }

    fn image_finished(&self, i: usize) -> Event {
        let t = &self.trees[i];
        Event::ImageFinished {
            key: t.key.clone(),
            image: t.image.clone(),
            // Where it is in the archive: its name in the layout.
            relocated: Some(format!(
                "{} in the archive",
                format::image_name(&t.image, &t.root.descriptor.digest).unwrap_or_else(|_| t
                    .root
                    .descriptor
                    .digest
                    .to_string())
            )),
            error: None,
            stopped: None,
        }
    }
}
