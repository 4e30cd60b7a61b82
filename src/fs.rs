//! Output files: written completely or not at all.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many symbolic links are followed before giving up (Linux's limit).
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path` as `>` in a shell would, but atomically where the
/// path is a file:
/// - a regular file, or a path that does not exist, is written to a
///   temporary file in the same directory, flushed to disk, then renamed over
///   it: a crash leaves either the old file or the new one, never a part of
///   one. A new file gets mode `0666` less the umask (`0644` under the usual
///   `022`), as `>` gives; a replaced file keeps its mode.
/// - a symbolic link is followed (to its final target, which may not exist
///   yet), and that target is written as above; the link stays a link.
/// - anything else that can be opened for writing (`/dev/null`, `/dev/stdout`,
///   a FIFO, a terminal) is written in place, never replaced.
///
/// # Errors
/// [`crate::Error::Io`] with the path, when the directory is not writable, the
/// path is a directory, links loop, or the disk fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |reason| cannot_write(path, reason);
    let (target, found) = output_target(path)?;
    match found {
        Some(m) if !m.is_file() => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(io)?;
            f.write_all(bytes).map_err(io)?;
            f.flush().map_err(io)
        }
        Some(m) => replace(&target, bytes, Some(m.permissions())).map_err(io),
        None => replace(&target, bytes, None).map_err(io),
    }
}

/// A file being written to `path`, as [`write_atomic`] writes: a temporary
/// file beside it, renamed over it by [`AtomicFile::commit`]; a special file
/// (a device, a FIFO) is written in place. Dropped without a commit, the
/// temporary file is removed and `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    target: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
    file: std::fs::File,
}

impl AtomicFile {
    /// Starts writing `path`.
    ///
    /// # Errors
    /// [`crate::Error::Io`] as for [`write_atomic`].
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let io = |reason| cannot_write(path, reason);
        let (target, found) = output_target(path)?;
        if let Some(m) = found.as_ref().filter(|m| !m.is_file()) {
            let _ = m;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(io)?;
            return Ok(AtomicFile {
                path: path.to_owned(),
                target,
                tmp: None,
                file,
            });
        }
        let tmp = temporary_beside(&target, found.map(|m| m.permissions())).map_err(io)?;
        let file = tmp.as_file().try_clone().map_err(io)?;
        Ok(AtomicFile {
            path: path.to_owned(),
            target,
            tmp: Some(tmp),
            file,
        })
    }

    /// The file to write into (a handle of its own, for another thread).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the handle cannot be duplicated.
    pub fn file(&self) -> Result<std::fs::File> {
        self.file
            .try_clone()
            .map_err(|reason| cannot_write(&self.path, reason))
    }

    /// Flushes the file to disk and renames it into place.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when syncing or renaming fails.
    pub fn commit(self) -> Result<()> {
        let io = |reason| cannot_write(&self.path, reason);
        let Some(tmp) = self.tmp else {
            return Ok(());
        };
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.target).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// Checks, before any work, that [`write_atomic`] can write `path`: it is not
/// a directory, and it is a special file or its directory exists and takes a
/// new file (a temporary file is made there and removed). Nothing is left
/// behind.
///
/// # Errors
/// [`crate::Error::Io`] with the path and the reason: a directory, a missing
/// directory, no permission, links that loop.
pub fn check_output(path: &Path) -> Result<()> {
    let io = |reason| cannot_write(path, reason);
    let (target, found) = output_target(path)?;
    if found.is_some_and(|m| !m.is_file()) {
        return Ok(());
    }
    let dir = directory_of(&target);
    if !dir.is_dir() {
        return Err(io(missing_directory(dir)));
    }
    tempfile::Builder::new()
        .prefix(".cnab-oci-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            io(std::io::Error::new(
                e.kind(),
                format!("its directory does not take a new file ({})", e.kind()),
            ))
        })
}

/// Where output `path` would land, for telling two outputs apart: its links
/// followed, its directory made absolute (`./a.json` and `a.json` are one
/// file). A path that cannot be resolved is returned as it is.
pub fn output_location(path: &Path) -> PathBuf {
    let target = final_target(path).unwrap_or_else(|_| path.to_owned());
    let dir = std::fs::canonicalize(directory_of(&target)).ok();
    match (dir, target.file_name()) {
        (Some(d), Some(name)) => d.join(name),
        _ => target,
    }
}

fn cannot_write(path: &Path, reason: std::io::Error) -> Error {
    Error::Io {
        action: "cannot write",
        path: path.to_owned(),
        reason,
    }
}

/// Where output `path` is written (its links followed) and what is there now
/// (`None`: nothing yet); a directory is refused.
fn output_target(path: &Path) -> Result<(PathBuf, Option<std::fs::Metadata>)> {
    let io = |reason| cannot_write(path, reason);
    let target = final_target(path).map_err(io)?;
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "it is a directory; name a file",
        ))),
        Ok(m) => Ok((target, Some(m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((target, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(io(std::io::Error::new(
            e.kind(),
            format!(
                "`{}` is a file, not a directory",
                directory_of(&target).display()
            ),
        ))),
        Err(e) => Err(io(e)),
    }
}

/// The directory a file `path` is in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn missing_directory(dir: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "the directory `{}` does not exist; create it first",
            dir.display()
        ),
    )
}

/// `path` with every symbolic link of its last component followed.
fn final_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links in a row"
    )))
}

/// Writes `path` through a temporary file beside it, renamed over it.
fn replace(path: &Path, bytes: &[u8], keep: Option<std::fs::Permissions>) -> std::io::Result<()> {
    let mut tmp = temporary_beside(path, keep)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file in `path`'s directory, with `keep`'s permissions or
/// those `open(2)` gives a new file.
fn temporary_beside(
    path: &Path,
    keep: Option<std::fs::Permissions>,
) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(missing_directory(dir));
    }
    // Named after the file it becomes, so that one left by a killed process
    // says whose it is.
    let prefix = format!(
        ".{}.cnab-oci-",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The mode `open(2)` is given; the umask applies, as for `>`.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    // tempfile's error names its temporary file; say the directory's case.
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot make a file in `{}` ({})", dir.display(), e.kind()),
        )
    })?;
    if let Some(p) = keep {
        tmp.as_file().set_permissions(p)?;
    }
    Ok(tmp)
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

    /// Special files are written in place and never replaced; a link is
    /// followed and stays a link; new files get the usual mode (issue 11 §10).
    #[cfg(unix)]
    #[test]
    fn special_files_links_and_modes() {
        use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
        write_atomic(Path::new("/dev/null"), b"nothing").unwrap();
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(
            m.file_type().is_char_device(),
            "/dev/null is still a device"
        );

        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomic(&link, b"through the link").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"through the link");
        write_atomic(&link, b"again").unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"again");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());

        // The umask is per process: read it back from a file made with 0666.
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("new.json");
        write_atomic(&new, b"x").unwrap();
        let mode = std::fs::metadata(&new).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, usual, "the mode `>` would give");
        assert_ne!(mode, 0o600, "not a temporary file's mode");
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&new, b"y").unwrap();
        let kept = std::fs::metadata(&new).unwrap().permissions().mode() & 0o777;
        assert_eq!(kept, 0o640, "a replaced file keeps its mode");

        let e = write_atomic(dir.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = check_output(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let missing = dir.path().join("nowhere/out.json");
        for e in [
            check_output(&missing).unwrap_err(),
            write_atomic(&missing, b"x").unwrap_err(),
        ] {
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot write `{}`: the directory `{}` does not exist; create it first",
                    missing.display(),
                    dir.path().join("nowhere").display()
                )
            );
        }
        check_output(&dir.path().join("fresh.json")).unwrap();
        check_output(Path::new("/dev/null")).unwrap();
        assert!(
            !dir.path().join("fresh.json").exists(),
            "the check writes nothing"
        );
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = write_atomic(&a, b"x").unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }
}
