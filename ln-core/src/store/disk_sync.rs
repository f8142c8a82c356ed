//! What sled's `flush` leaves out for a power loss, done after it.
//!
//! sled 0.34 makes its log stable with `sync_file_range` on Linux
//! (`pagecache/iobuf.rs`), not `fsync`: that writes the pages out, but not the file's size or
//! other metadata, and it does not flush the drive's write cache. Values over a quarter of a
//! segment (128 KiB with the default 512 KiB segments: a channel manager with many HTLCs in
//! flight, a large monitor) go to files of their own under `blobs/`, which sled writes and never
//! syncs. Both survive a crash of the process (`kill -9`), since the kernel holds them, but not
//! necessarily a power loss or a crash of the machine. LDK takes a returned monitor write as
//! durable, so after each flush [`DiskSync::sync`] `fdatasync`s the log file and every blob file
//! it has not synced before, and the directory that names them.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The files of one sled database that [`DiskSync::sync`] makes durable.
#[derive(Debug)]
pub(crate) struct DiskSync {
    /// sled's log and page file, `<store>/db`.
    log: File,
    /// `<store>/blobs`, created by sled with its first blob.
    blobs: PathBuf,
    /// The blob files synced so far (sled only ever writes a blob once, under a new name).
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl DiskSync {
    /// Opens the log file of the sled database in `store`, and syncs `store` itself once so that
    /// the entries sled created when it made the database are durable too.
    pub(crate) fn open(store: &Path) -> io::Result<Self> {
        let log = File::open(store.join("db"))?;
        sync_directory(store)?;
        Ok(Self {
            log,
            blobs: store.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// Makes what sled's flush wrote durable: the blob files new since the last call and the
    /// directory entries naming them, then the log.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.sync_new_blobs()?;
        self.log.sync_data()
    }

    fn sync_new_blobs(&self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::with_capacity(synced.len());
        let mut added = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(blob) => blob.sync_data()?,
                    // sled removed it since (it collects blobs it no longer needs).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                added = true;
            }
            present.insert(name);
        }
        if added {
            sync_directory(&self.blobs)?;
        }
        // Forget blobs sled removed, so the set stays as small as the directory.
        *synced = present;
        Ok(())
    }

    /// Whether the blob file `name` was synced (for tests).
    #[cfg(test)]
    pub(crate) fn has_synced_blob(&self, name: &std::ffi::OsStr) -> bool {
        self.synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(name)
    }
}

/// `fsync` of a directory: makes the names of files created in it durable.
fn sync_directory(directory: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}
