//! run_for directly, same settings as soakd's ci profile (1 thread, defaults), hakmem global.
use std::time::Duration;
#[global_allocator]
static G: hakmem::Hakmem = hakmem::Hakmem;
fn main() {
    let secs: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(20);
    hakmem::set_options(hakmem::Options::for_profile(hakmem::Profile::Balanced));
    let cfg = hakmem_workload::WorkloadConfig::default();
    let (ops, el) = hakmem_workload::run_for(&cfg, &hakmem::Hakmem, Duration::from_secs(secs));
    println!("run_for {:.3} Mops/s", ops.total() as f64 / el.as_secs_f64() / 1e6);
}
