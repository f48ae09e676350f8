//! libhakmem.so: the C ABI (placeholder until the C ABI lands).
pub use hakmem_core::Hakmem;
