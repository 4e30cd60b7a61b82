//! Rendering events: progress bars on a terminal, plain lines otherwise, JSON
//! lines with `--output json`. All of it goes to stderr; stdout is for results.

use cnab_oci::relocate::events::{Action, Event, Reporter};
use cnab_oci::relocate::{LeftBehind, NotSearched, PlannedReferrer};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Progress bars (stderr is a terminal).
    Bars,
    /// One line per event that matters.
    Lines,
    /// One JSON object per event.
    Json,
    /// Nothing (`-q`).
    Quiet,
}

/// Picks the style: JSON when asked, nothing when quiet, bars on a terminal.
pub fn style(json: bool, quiet: bool) -> Style {
    use std::io::IsTerminal;
    if json {
        Style::Json
    } else if quiet {
        Style::Quiet
    } else if std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    {
        Style::Bars
    } else {
        Style::Lines
    }
}

/// A reporter for `style`, or none.
pub fn reporter(style: Style) -> Option<std::sync::Arc<dyn Reporter>> {
    match style {
        Style::Quiet => None,
        Style::Json => Some(std::sync::Arc::new(|e: &Event| {
            if let Ok(line) = serde_json::to_string(e) {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        })),
        Style::Lines => Some(std::sync::Arc::new(Lines)),
        Style::Bars => Some(std::sync::Arc::new(Bars::new())),
    }
}

struct Lines;

impl Reporter for Lines {
    fn on_event(&self, e: &Event) {
        let line = match e {
            Event::ImageStarted { key, image } => format!("{key} {image}: resolving"),
            Event::Planned { images } => {
                let n: usize = images.iter().map(|t| t.root.nodes().len()).sum();
                format!("planned {} image(s), {n} object(s)", images.len())
            }
            Event::NodeFinished {
                digest,
                action,
                error: None,
            } if *action != Action::SkipPresent => format!("{} {digest}", action.as_str()),
            Event::NodeFinished {
                digest,
                error: Some(e),
                ..
            } => format!("failed {digest}: {e}"),
            Event::ImageFinished {
                key,
                image,
                relocated: Some(r),
                ..
            } => format!("{key} {image}: done, at {r}"),
            Event::ImageFinished {
                key,
                image,
                error: Some(e),
                ..
            } => format!("{key} {image}: failed: {e}"),
            Event::ImageFinished {
                key,
                image,
                stopped: Some(why),
                ..
            } => format!("{key} {image}: not relocated: {why}"),
            Event::Fallback { message } => format!("fallback: {message}"),
            Event::ReferrerTagKept { tag, digest, kept } => tag_kept(tag, digest, kept),
            Event::ReferrersPlanned {
                carried,
                left_behind,
                not_searched,
            } => referrers_planned(carried, left_behind, not_searched),
            Event::ReferrerFinished {
                subject,
                digest,
                action: Action::Push,
            } => format!("referrer {digest} of {subject}: pushed"),
            Event::Pushed {
                reference,
                descriptor,
            } => format!("pushed {reference} ({})", descriptor.digest),
            _ => return,
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// One bar per image (objects done of objects to do) and one for bytes.
struct Bars {
    multi: MultiProgress,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    images: HashMap<String, ProgressBar>,
    /// How many images have ended, so that the last is known without a scan.
    ended: usize,
    bytes: Option<ProgressBar>,
    /// Bytes done per blob, to sum retries and parallel transfers correctly.
    done: HashMap<String, u64>,
    /// Sizes of the blobs planned as copies: one the target turns out to
    /// have leaves the byte total.
    to_copy: HashMap<String, u64>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            state: Mutex::new(BarState::default()),
        }
    }
}

impl Reporter for Bars {
    fn on_event(&self, e: &Event) {
        let mut st = self.state.lock().expect("bars");
        match e {
            Event::ImageStarted { key, image } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                        .expect("template"),
                );
                bar.set_prefix(key.to_string());
                bar.set_message(format!("{image}: resolving"));
                st.images.insert(key.to_string(), bar);
            }
            Event::Planned { images } => {
                st.to_copy = images
                    .iter()
                    .flat_map(|t| t.root.nodes())
                    .filter(|n| n.action == Action::Copy)
                    .map(|n| (n.descriptor.digest.to_string(), n.descriptor.size))
                    .collect();
                let total: u64 = st.to_copy.values().sum();
                for t in images.iter() {
                    if let Some(bar) = st.images.get(&t.key.to_string()) {
                        let nodes = t.root.nodes();
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix:.bold} [{bar:20}] {pos}/{len} {wide_msg}",
                            )
                            .expect("template")
                            .progress_chars("=> "),
                        );
                        bar.set_length(nodes.len() as u64);
                        bar.set_position(nodes.iter().filter(|n| n.done).count() as u64);
                        bar.set_message(t.image.clone());
                    }
                }
                let bytes = self.multi.add(ProgressBar::new(total));
                bytes.set_style(
                    ProgressStyle::with_template(
                        "total [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                st.bytes = Some(bytes);
            }
            Event::Transfer { digest, done, .. } => {
                let prev = st.done.insert(digest.clone(), *done).unwrap_or(0);
                if let Some(b) = &st.bytes {
                    if *done >= prev {
                        b.inc(done - prev);
                    } else {
                        b.set_position(b.position().saturating_sub(prev - done));
                    }
                }
            }
            Event::Progress { images } => {
                for t in images.iter() {
                    if let Some(bar) = st.images.get(&t.key.to_string()) {
                        bar.set_position(t.root.nodes().iter().filter(|n| n.done).count() as u64);
                    }
                }
            }
            Event::ImageFinished {
                key,
                image,
                relocated,
                error,
                stopped,
            } => {
                if let Some(bar) = st.images.get(&key.to_string()) {
                    match (relocated, error, stopped) {
                        (Some(r), _, _) => bar.finish_with_message(format!("{image} → {r}")),
                        (_, Some(e), _) => {
                            bar.abandon_with_message(format!("{image}: failed: {e}"));
                        }
                        (_, _, Some(why)) => {
                            bar.abandon_with_message(format!("{image}: not relocated: {why}"));
                        }
                        _ => bar.finish(),
                    }
                }
                st.ended += 1;
                if st.ended >= st.images.len() {
                    if let Some(b) = &st.bytes {
                        b.finish();
                    }
                }
            }
            Event::NodeFinished {
                digest,
                action: Action::SkipPresent,
                error: None,
            } => {
                if let (Some(size), Some(b)) = (st.to_copy.remove(digest), &st.bytes) {
                    b.set_length(b.length().unwrap_or(0).saturating_sub(size));
                }
            }
            Event::Fallback { message } => {
                let _ = self.multi.println(format!("fallback: {message}"));
            }
            Event::ReferrerTagKept { tag, digest, kept } => {
                let _ = self.multi.println(tag_kept(tag, digest, kept));
            }
            Event::ReferrersPlanned {
                carried,
                left_behind,
                not_searched,
            } => {
                let _ = self
                    .multi
                    .println(referrers_planned(carried, left_behind, not_searched));
            }
            _ => {}
        }
    }
}

/// A cosign tag of the target that names another signature: kept.
fn tag_kept(tag: &str, digest: &str, kept: &str) -> String {
    format!(
        "warning: the target's tag {tag} names {kept} (another signature): kept, not replaced; \
         {digest} is in the target by its digest only"
    )
}

/// What a plan's referrers come to, for a terminal: how many are carried,
/// then one warning line per referrer left behind, with why.
fn referrers_planned(
    carried: &[PlannedReferrer],
    left_behind: &[LeftBehind],
    not_searched: &[NotSearched],
) -> String {
    let present = carried.iter().filter(|r| r.present).count();
    let mut out = format!(
        "referrers: {} to carry, {present} present",
        carried.len() - present
    );
    for n in not_searched {
        let _ = write!(
            out,
            "\nwarning: cannot {} of `{}`, so its signatures were not looked for: {}",
            n.action, n.store, n.error
        );
    }
    for l in left_behind {
        let f = &l.found;
        let what = f.artifact_type.as_deref().unwrap_or("referrer");
        let owner = f
            .key
            .as_ref()
            .map_or_else(|| "the bundle".to_owned(), ToString::to_string);
        let _ = write!(
            out,
            "\nwarning: {what} {} of {} ({owner} {}) is left behind: {}",
            f.descriptor.digest, f.subject, f.image, l.reason
        );
    }
    out
}
