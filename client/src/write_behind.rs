//! Writing a large output file without filling memory with it.
//!
//! A decoded file is written front to back. Left to itself the kernel keeps
//! every written page dirty and then cached: a 100 GiB download would sit in
//! the page cache, the final sync would write it all at once, and every page
//! would be fresh memory (on a VM that hands free pages back to its host,
//! fresh pages cost several times the copy itself — BENCHMARKS.md). Here a
//! thread behind the writer syncs what has been written, window by window,
//! and lets the kernel drop it, so at most a few windows are dirty or cached
//! at once and their pages are reused for the next ones.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes written between two syncs.
const WINDOW_BYTES: u64 = 16 << 20;

/// Windows written ahead of the sync before the writer waits for it.
const WINDOWS_AHEAD: usize = 2;

/// A [`Write`] to a file whose written bytes are synced and dropped from
/// the page cache behind the writer. [`WriteBehind::finish`] waits for the
/// syncing thread and reports its error; the caller still syncs the file
/// (the last window) before relying on it.
#[derive(Debug)]
pub struct WriteBehind {
    file: File,
    written: u64,
    announced: u64,
    settled: Option<(mpsc::SyncSender<u64>, JoinHandle<io::Result<()>>)>,
}

impl WriteBehind {
    /// Writes to `file` (through a handle of its own; another is synced
    /// behind).
    pub fn new(file: &File) -> io::Result<Self> {
        let (file, behind) = (file.try_clone()?, file.try_clone()?);
        let (sender, receiver) = mpsc::sync_channel::<u64>(WINDOWS_AHEAD);
        let thread = std::thread::Builder::new().name("strand-write-behind".into()).spawn(move || {
            // Everything before `dropped` is synced and was dropped before.
            let mut dropped = 0u64;
            for written in receiver {
                behind.sync_data()?;
                // Advice only: a kernel that ignores it keeps the pages cached.
                let (start, length) = (i64::try_from(dropped), i64::try_from(written - dropped));
                if let (Ok(start), Ok(length)) = (start, length) {
                    let advice = nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED;
                    let _ = nix::fcntl::posix_fadvise(&behind, start, length, advice);
                }
                dropped = written;
            }
            Ok(())
        })?;
        Ok(Self { file, written: 0, announced: 0, settled: Some((sender, thread)) })
    }

    /// Waits for the syncing thread; its error, if any, is the write's.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some((sender, thread)) = self.settled.take() else {
            return Ok(());
        };
        drop(sender);
        thread.join().map_err(|_| io::Error::other("the write-behind thread panicked"))?
    }
}

impl Write for WriteBehind {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.written += written as u64;
        if self.written - self.announced >= WINDOW_BYTES {
            self.announced = self.written;
            let stopped = match &self.settled {
                Some((sender, _)) => sender.send(self.written).is_err(),
                None => false,
            };
            if stopped {
                // The thread ended early: only a failed sync does that.
                self.stop()?;
                return Err(io::Error::other("syncing the output stopped"));
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn writes_every_byte_in_order() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("out");
        let mut writer = WriteBehind::new(&File::create(&path).expect("create")).expect("writer");
        let mut expected = Vec::new();
        // Uneven pieces across several windows.
        for piece in 0..40u32 {
            let bytes = vec![u8::try_from(piece % 251).expect("small"); 1_000_003 + piece as usize];
            writer.write_all(&bytes).expect("write");
            expected.extend_from_slice(&bytes);
        }
        writer.finish().expect("finish");
        let mut actual = Vec::new();
        File::open(&path).expect("open").read_to_end(&mut actual).expect("read");
        assert_eq!(actual.len(), expected.len());
        assert!(actual == expected, "the file differs from what was written");
    }
}
