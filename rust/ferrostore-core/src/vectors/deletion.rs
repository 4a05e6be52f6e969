//! Whether a collection was deleted, seen by every process that has it open.
//!
//! The process deleting a collection sets a byte in the folder's `deleted` file before it
//! removes the folder. Every process that opened the collection maps that file shared, so
//! the mark reaches it through the page cache: checking costs one load from memory, where a
//! `stat` of the folder costs a system call (half a microsecond, on every query).

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::{Error, Result};

/// The file holding the mark, in the collection's folder.
const MARK_FILE: &str = "deleted";
/// The mark's size: the file is never shorter, so the mapping never reads past its end.
const MARK_LEN: u64 = 8;

fn open_mark(folder: &Path) -> Result<File> {
    let path = folder.join(MARK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::Storage(format!("cannot open '{}': {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| Error::Storage(format!("cannot read '{}': {e}", path.display())))?
        .len();
    if len < MARK_LEN {
        // Concurrent openers may both extend it: set_len to the same size is idempotent.
        file.set_len(MARK_LEN)
            .map_err(|e| Error::Storage(format!("cannot size '{}': {e}", path.display())))?;
    }
    Ok(file)
}

/// Marks the collection in `folder` deleted, for every process that has it open. Call it
/// before removing the folder; a folder that is already gone needs no mark.
///
/// # Errors
/// `Storage` when the mark cannot be written.
pub fn mark_deleted(folder: &Path) -> Result<()> {
    if !folder.is_dir() {
        return Ok(());
    }
    let file = open_mark(folder)?;
    write_mark(&file).map_err(|e| {
        Error::Storage(format!(
            "cannot mark '{}' deleted: {e}",
            folder.join(MARK_FILE).display()
        ))
    })
}

#[cfg(unix)]
fn write_mark(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(&[1], 0)
}

#[cfg(not(unix))]
fn write_mark(file: &File) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&[1])
}

/// The mark of an open collection, mapped into memory.
pub(crate) struct DeletionMark {
    #[cfg(unix)]
    mapped: std::ptr::NonNull<std::sync::atomic::AtomicU8>,
    #[cfg(not(unix))]
    folder: std::path::PathBuf,
    /// The folder, held open: a folder removed without the mark (by hand) has no links left.
    held: File,
}

// SAFETY: the mapping is only read, through an atomic, and lives as long as the value.
#[cfg(unix)]
unsafe impl Send for DeletionMark {}
// SAFETY: as above; concurrent atomic loads are sound.
#[cfg(unix)]
unsafe impl Sync for DeletionMark {}

impl DeletionMark {
    /// Opens (creating it if needed) the mark of the collection in `folder`.
    pub(crate) fn open(folder: &Path) -> Result<DeletionMark> {
        let held = File::open(folder).map_err(|e| {
            Error::Storage(format!(
                "cannot open collection folder '{}': {e}",
                folder.display()
            ))
        })?;
        let file = open_mark(folder)?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a fresh shared read-only mapping of a file at least MARK_LEN long; the
            // file may be closed afterwards, the mapping keeps its pages.
            let address = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    MARK_LEN as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            if address == libc::MAP_FAILED {
                return Err(Error::Storage(format!(
                    "cannot map '{}': {}",
                    folder.join(MARK_FILE).display(),
                    std::io::Error::last_os_error()
                )));
            }
            let mapped = std::ptr::NonNull::new(address.cast()).ok_or_else(|| {
                Error::Storage(format!(
                    "cannot map '{}': null mapping",
                    folder.join(MARK_FILE).display()
                ))
            })?;
            Ok(DeletionMark { mapped, held })
        }
        #[cfg(not(unix))]
        {
            drop(file);
            Ok(DeletionMark {
                folder: folder.to_path_buf(),
                held,
            })
        }
    }

    /// Whether the collection was deleted through the API (by any process): one load.
    pub(crate) fn is_marked(&self) -> bool {
        #[cfg(unix)]
        {
            // SAFETY: the mapping is valid until drop.
            let byte = unsafe { self.mapped.as_ref() };
            byte.load(std::sync::atomic::Ordering::Acquire) != 0
        }
        #[cfg(not(unix))]
        {
            !self.folder.is_dir()
        }
    }

    /// Whether the collection is gone: marked, or its folder removed by other means. The
    /// latter costs an `fstat`; writes check it so that nothing is acknowledged into a
    /// removed folder.
    pub(crate) fn is_gone(&self) -> bool {
        if self.is_marked() {
            return true;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.held.metadata().map_or(true, |m| m.nlink() == 0)
        }
        #[cfg(not(unix))]
        {
            let _ = &self.held;
            false
        }
    }
}

#[cfg(unix)]
impl Drop for DeletionMark {
    fn drop(&mut self) {
        // SAFETY: mapped by `open` with this length, unmapped once.
        unsafe {
            libc::munmap(self.mapped.as_ptr().cast(), MARK_LEN as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reaches_mappings_opened_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = DeletionMark::open(dir.path()).unwrap();
        let second = DeletionMark::open(dir.path()).unwrap();
        assert!(!first.is_marked() && !first.is_gone());
        mark_deleted(dir.path()).unwrap();
        assert!(first.is_marked() && second.is_marked());
        assert!(first.is_gone());
    }

    #[test]
    fn a_folder_removed_by_hand_is_gone_but_not_marked() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("c");
        std::fs::create_dir(&folder).unwrap();
        let mark = DeletionMark::open(&folder).unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
        assert!(!mark.is_marked());
        assert!(mark.is_gone());
        // Nothing to mark once the folder is gone.
        mark_deleted(&folder).unwrap();
        assert!(!folder.exists());
    }
}
