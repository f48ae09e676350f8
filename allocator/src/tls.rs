//! The thread's heap pointer, in one thread-local slot.
//!
//! On x86-64 Linux the slot is declared in assembly with the initial-exec TLS
//! model: reading it is two loads (`mov reg, [rip+slot@GOTTPOFF]; mov reg,
//! fs:[reg]`, relaxed to one in executables), also inside `libhakmem.so`,
//! where Rust's `thread_local!` would use the general-dynamic model and call
//! `__tls_get_addr` on every malloc. Elsewhere `thread_local!` is used.
//!
//! Invariants: the slot is null until the thread's first slow-path allocation,
//! and null again once the thread's heap has been handed back at exit.

use crate::heap::Heap;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::Heap;
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
        ".popsection",
    );

    #[inline(always)]
    pub(crate) fn get() -> *mut Heap {
        let v: *mut Heap;
        // SAFETY: reads this thread's 8-byte slot, which the TLS image defines
        // for every thread (zero-initialised).
        unsafe {
            asm!(
                "mov {v}, qword ptr [rip + hakmem_tls_heap_v1@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        v
    }

    #[inline]
    pub(crate) fn set(h: *mut Heap) {
        // SAFETY: writes this thread's own 8-byte slot.
        unsafe {
            asm!(
                "mov {t}, qword ptr [rip + hakmem_tls_heap_v1@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Heap;
    use core::cell::Cell;

    thread_local! {
        static SLOT: Cell<*mut Heap> = const { Cell::new(core::ptr::null_mut()) };
    }

    #[inline(always)]
    pub(crate) fn get() -> *mut Heap {
        SLOT.with(|s| s.get())
    }

    #[inline]
    pub(crate) fn set(h: *mut Heap) {
        SLOT.with(|s| s.set(h))
    }
}

pub(crate) use imp::{get, set};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_per_thread() {
        // Allocate first so this thread's heap exists (the tests run on hakmem).
        let keep = Box::new(1u64);
        let here = get();
        assert!(!here.is_null());
        let here_addr = here as usize;
        std::thread::spawn(move || {
            let _ = Box::new(2u64);
            let mine = get();
            assert!(!mine.is_null());
            assert_ne!(mine as usize, here_addr);
        })
        .join()
        .unwrap();
        assert_eq!(get(), here);
        drop(keep);
    }
}
