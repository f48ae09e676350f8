//! A fast PRNG for slot choice and secrets (xorshift64*), seeded from the
//! kernel's AT_RANDOM bytes and the clock: no syscall, no allocation.
//!
//! Invariants:
//! - Used only under the hardened lock; the state is never zero once seeded.

pub(super) struct Rng(u64);

impl Rng {
    pub(super) const fn new() -> Rng {
        Rng(0)
    }

    pub(super) fn next(&mut self) -> u64 {
        if self.0 == 0 {
            self.0 = seed();
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn seed() -> u64 {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    // SAFETY: getauxval has no preconditions; AT_RANDOM, where present, is
    // the address of 16 random bytes the kernel put on the initial stack,
    // readable for the life of the process.
    unsafe {
        let r = libc::getauxval(libc::AT_RANDOM) as *const u64;
        if !r.is_null() {
            s ^= r.read_unaligned() ^ r.add(1).read_unaligned().rotate_left(32);
        }
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter (vDSO: no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    s ^= (ts.tv_nsec as u64).rotate_left(17) ^ ts.tv_sec as u64;
    s.max(1)
}
