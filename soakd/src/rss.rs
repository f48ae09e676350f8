//! The process's resident set size, read from `/proc/self/statm` through a
//! file kept open: one `pread` and a few bytes of parsing per sample. Measured
//! (release, 20,000 reads) at 0.8 µs per read against 36 µs for sysinfo 0.37's
//! single-process memory refresh, which also allocates on the measured heap;
//! CPU time comes from the Prometheus process collector, so sysinfo is not needed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub struct RssReader {
    statm: File,
    page_size: u64,
}

impl RssReader {
    pub fn open() -> io::Result<RssReader> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Ok(RssReader {
            statm: File::open("/proc/self/statm")?,
            page_size: u64::try_from(page).unwrap_or(4096),
        })
    }

    /// Resident bytes now.
    pub fn read(&self) -> io::Result<u64> {
        let mut buf = [0u8; 128];
        // procfs regenerates the file on a read at offset 0.
        let n = self.statm.read_at(&mut buf, 0)?;
        parse_resident_pages(&buf[..n])
            .map(|pages| pages * self.page_size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected statm format"))
    }
}

/// The second field of statm ("size resident shared text lib data dt"), in pages.
fn parse_resident_pages(statm: &[u8]) -> Option<u64> {
    let field = statm.split(|b| b.is_ascii_whitespace()).nth(1)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_resident_field() {
        assert_eq!(
            parse_resident_pages(b"5000 1234 300 10 0 900 0\n"),
            Some(1234)
        );
        assert_eq!(parse_resident_pages(b"5000"), None);
        assert_eq!(parse_resident_pages(b"a b c"), None);
    }

    #[test]
    fn follows_a_growing_heap() {
        let r = RssReader::open().unwrap();
        let before = r.read().unwrap();
        assert!(before > 0);
        // Touch 64 MiB: RSS must grow by most of it.
        let v = vec![1u8; 64 << 20];
        let after = r.read().unwrap();
        assert!(after > before + (48 << 20), "{before} -> {after}");
        drop(v);
    }
}
