//! The f32 path computes with subnormal numbers flushed to zero (x86-64's MXCSR FTZ and DAZ),
//! as GPUs do, on every thread of a step, so that its results still do not depend on the
//! thread count.
//!
//! Why: on x86 CPUs an operation whose input or output is subnormal (below 1.2e-38 in f32)
//! takes a microcode assist: 46–74 ns per AVX vector instead of 0.5–1.9 ns, measured for a
//! multiply, an add with a subnormal result and a fused multiply-add on a Sapphire Rapids
//! core (conversions between f32 and f64 take none). Training makes them: Adam's
//! first moment of a weight whose input is rarely lit decays by β1 every step through the
//! subnormal range, and softmax probabilities of confident predictions fall there. On seed001
//! they cost a third of every epoch after the first. Flushing changes values only below f32's
//! smallest normal number, far inside every tolerance against the f64 reference (which never
//! flushes: it runs without this).
//!
//! Every thread that computes part of a step must flush, or a value's rounding would depend
//! on which thread computed it: the calling thread flushes while the step runs (`Flushing`),
//! and the backend's pieces run on its own pool whose threads flush from their start (`pool`).
//! Elsewhere than x86-64 nothing is flushed (and nothing changes).

/// FTZ (bit 15: subnormal results become zero) and DAZ (bit 6: subnormal inputs read as zero).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stmxcsr writes the 4 bytes of `v`.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags)) };
    v
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(v: u32) {
    // SAFETY: ldmxcsr reads the 4 bytes of `v`; only the FTZ and DAZ bits ever change, and
    // neither can raise an exception.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly, preserves_flags)) };
}

/// Subnormals flushed on this thread until dropped (then the thread's own setting returns).
pub struct Flushing {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl Flushing {
    pub fn start() -> Flushing {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = mxcsr();
            set_mxcsr(saved | FTZ_DAZ);
            Flushing { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Flushing {}
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        set_mxcsr(self.saved);
    }
}

/// Whether this thread flushes subnormals now.
#[cfg(test)]
fn is_on() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mxcsr() & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A pool of `threads` threads that flush subnormals from their start, for a backend's pieces.
pub fn pool(threads: usize) -> std::io::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gpu-nn-cpu-{i}"))
        .start_handler(|_| std::mem::forget(Flushing::start()))
        .build()
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest normal f32 halved: subnormal without flushing, zero with it. Read through
    /// `black_box` so that the compiler cannot fold the product at build time.
    fn half_of_smallest_normal() -> f32 {
        std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5f32)
    }

    #[test]
    fn flushing_zeroes_subnormal_results_and_restores_the_thread_after() {
        let before = half_of_smallest_normal();
        assert!(before > 0.0 && before < f32::MIN_POSITIVE, "without flushing the product is subnormal: {before:e}");
        {
            let _f = Flushing::start();
            let flushed = half_of_smallest_normal();
            if cfg!(target_arch = "x86_64") {
                assert!(is_on());
                assert_eq!(flushed, 0.0, "FTZ on: the subnormal product reads as zero");
            } else {
                assert_eq!(flushed, before);
            }
        }
        assert!(!is_on());
        assert_eq!(half_of_smallest_normal(), before, "the thread's own setting is back");
    }

    #[test]
    fn the_pools_threads_flush_and_the_caller_does_not() {
        let p = pool(2).unwrap();
        let on: Vec<bool> = p.install(|| {
            let mut v = vec![is_on()];
            rayon::scope(|s| s.spawn(|_| v.push(is_on())));
            v
        });
        assert_eq!(on, vec![cfg!(target_arch = "x86_64"); 2]);
        assert!(!is_on());
    }
}
