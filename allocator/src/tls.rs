//! The thread's two thread-local words: its heap pointer and its exit state.
//!
//! On x86-64 Linux the slots are declared in assembly with the initial-exec TLS
//! model: reading one is two loads (`mov reg, [rip+slot@GOTTPOFF]; mov reg,
//! fs:[reg]`, relaxed to one in executables), also inside `libhakmem.so`,
//! where Rust's `thread_local!` would use the general-dynamic model and call
//! `__tls_get_addr` on every malloc. Elsewhere `thread_local!` is used.
//!
//! Invariants: the heap slot is null until the thread's first slow-path
//! allocation, and null again once the thread's heap has been handed back at
//! exit. The exit-state slot is read and written on slow paths only (see
//! `init::thread_exit`).

use crate::heap::Heap;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use core::arch::asm;

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl hakmem_tls_heap_v1",
        ".hidden hakmem_tls_heap_v1",
        ".type hakmem_tls_heap_v1,@object",
        ".size hakmem_tls_heap_v1,8",
        "hakmem_tls_heap_v1:",
        ".zero 8",
        ".globl hakmem_tls_state_v1",
        ".hidden hakmem_tls_state_v1",
        ".type hakmem_tls_state_v1,@object",
        ".size hakmem_tls_state_v1,8",
        "hakmem_tls_state_v1:",
        ".zero 8",
        ".popsection",
    );

    macro_rules! slot {
        ($get:ident, $set:ident, $sym:literal) => {
            #[inline(always)]
            pub(crate) fn $get() -> usize {
                let v: usize;
                // SAFETY: reads this thread's 8-byte slot, which the TLS image
                // defines for every thread (zero-initialised).
                unsafe {
                    asm!(
                        concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v}]",
                        v = out(reg) v,
                        options(nostack, preserves_flags, readonly),
                    );
                }
                v
            }

            #[inline]
            pub(crate) fn $set(x: usize) {
                // SAFETY: writes this thread's own 8-byte slot.
                unsafe {
                    asm!(
                        concat!("mov {t}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t}], {x}",
                        t = out(reg) _,
                        x = in(reg) x,
                        options(nostack, preserves_flags),
                    );
                }
            }
        };
    }

    slot!(heap_word, set_heap_word, "hakmem_tls_heap_v1");
    slot!(state, set_state, "hakmem_tls_state_v1");
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use core::cell::Cell;

    thread_local! {
        static SLOTS: [Cell<usize>; 2] = const { [Cell::new(0), Cell::new(0)] };
    }

    #[inline(always)]
    pub(crate) fn heap_word() -> usize {
        SLOTS.with(|s| s[0].get())
    }
    #[inline]
    pub(crate) fn set_heap_word(x: usize) {
        SLOTS.with(|s| s[0].set(x))
    }
    pub(crate) fn state() -> usize {
        SLOTS.with(|s| s[1].get())
    }
    pub(crate) fn set_state(x: usize) {
        SLOTS.with(|s| s[1].set(x))
    }
}

pub(crate) use imp::{set_state, state};

/// This thread's heap, null if it has none.
#[inline(always)]
pub(crate) fn get() -> *mut Heap {
    imp::heap_word() as *mut Heap
}

#[inline]
pub(crate) fn set(h: *mut Heap) {
    imp::set_heap_word(h as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_thread() {
        // Allocate first so this thread's heap exists (the tests run on hakmem).
        let keep = Box::new(1u64);
        let here = get();
        assert!(!here.is_null());
        let here_addr = here as usize;
        set_state(7);
        std::thread::spawn(move || {
            assert_eq!(state(), 0);
            let _ = Box::new(2u64);
            let mine = get();
            assert!(!mine.is_null());
            assert_ne!(mine as usize, here_addr);
        })
        .join()
        .unwrap();
        assert_eq!(get(), here);
        assert_eq!(state(), 7);
        set_state(0);
        drop(keep);
    }
}
