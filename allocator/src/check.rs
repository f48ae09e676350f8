//! Fatal errors: one `hakmem:` line on stderr, then abort.
//!
//! Invariants:
//! - Reporting never allocates (the heap may be corrupt or locked), so messages
//!   are formatted into a stack buffer and written with `write(2)`.
//! - Which checks run is decided at compile time: the default build validates
//!   every free cheaply; feature `fast` compiles the validation out.

/// Whether the cheap integrity checks are compiled in.
pub(crate) const CHECKS: bool = cfg!(not(feature = "fast"));

/// Prints `hakmem: <what> <ptr>` and aborts the process.
#[cold]
#[inline(never)]
pub(crate) fn fatal(what: &str, ptr: *const u8) -> ! {
    let mut buf = [0u8; 160];
    let mut n = 0;
    for part in [b"hakmem: ".as_slice(), what.as_bytes(), b" (pointer 0x"] {
        let take = part.len().min(buf.len() - n - 24);
        buf[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    n += write_hex(&mut buf[n..], ptr as usize);
    buf[n] = b')';
    buf[n + 1] = b'\n';
    write_stderr(&buf[..n + 2]);
    // SAFETY: abort has no preconditions and never returns.
    unsafe { libc::abort() }
}

/// [`fatal`] for a fast path's failed check, reached by a jump: a call to a
/// function that never returns would make `malloc` and `free` set up a stack
/// frame on every call. It returns for a null pointer, which no check
/// reports, only so that the compiler cannot treat it as never returning.
#[cold]
#[inline(never)]
pub(crate) fn reject(what: &'static str, ptr: *const u8) {
    if !ptr.is_null() {
        fatal(what, ptr)
    }
}

/// Writes raw bytes to stderr, ignoring errors (there is nobody left to tell).
pub(crate) fn write_stderr(bytes: &[u8]) {
    // SAFETY: the buffer is valid for `len` bytes.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Lower-case hex digits of `v` into `out`; returns the count (at most 16).
pub(crate) fn write_hex(out: &mut [u8], v: usize) -> usize {
    let digits = ((usize::BITS - v.leading_zeros()).div_ceil(4)).max(1) as usize;
    for (i, o) in out[..digits].iter_mut().enumerate() {
        *o = b"0123456789abcdef"[(v >> ((digits - 1 - i) * 4)) & 0xf];
    }
    digits
}

/// Decimal digits of `v` into `out`; returns the count (at most 20).
pub(crate) fn write_dec(out: &mut [u8], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (o, t) in out[..n].iter_mut().zip(tmp[..n].iter().rev()) {
        *o = *t;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_dec_format_without_allocating() {
        let mut b = [0u8; 24];
        let n = write_hex(&mut b, 0xdead_beef);
        assert_eq!(&b[..n], b"deadbeef");
        let n = write_hex(&mut b, 0);
        assert_eq!(&b[..n], b"0");
        let n = write_dec(&mut b, 1_234_567);
        assert_eq!(&b[..n], b"1234567");
        let n = write_dec(&mut b, u64::MAX);
        assert_eq!(&b[..n], b"18446744073709551615");
    }
}
