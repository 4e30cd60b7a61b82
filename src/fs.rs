//! Output files: written completely or not at all.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: to a temporary file in the same
/// directory, flushed to disk, then renamed over `path`. A crash leaves either
/// the old file or the new one, never a part of one.
///
/// # Errors
/// [`crate::Error::Io`] with the path, when the directory is not writable or
/// the disk fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |reason| Error::Io {
        action: "cannot write",
        path: path.to_owned(),
        reason,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".cnab-oci-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a whole file, naming it in the error.
///
/// # Errors
/// [`crate::Error::Io`] with the path.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|reason| Error::Io {
        action: "cannot read",
        path: path.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_atomic(&dir.path().join("missing/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
    }

    /// A reader never sees a partial file, whatever moment it reads at: the
    /// property a crash mid-write relies on. (A plain truncate-and-write fails
    /// this: readers see empty and half-written files.)
    #[test]
    fn readers_see_the_old_file_or_the_new_one_never_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        let (a, b) = (vec![b'a'; 1 << 20], vec![b'b'; 1 << 20]);
        write_atomic(&p, &a).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = std::fs::read(&p).unwrap();
                    assert_eq!(got.len(), 1 << 20, "a partial file was visible");
                    assert!(got.iter().all(|&c| c == got[0]), "a mixed file was visible");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..60 {
            write_atomic(&p, if i % 2 == 0 { &b } else { &a }).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
