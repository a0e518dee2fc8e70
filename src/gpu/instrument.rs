//! Benchmark hooks: what the scheduler counts as it runs (dispatches, submissions, host-clock
//! time per phase), read through `GpuBackend::counters`, and the harness behind
//! `GpuBackend::time_matmul`.

use super::context::Gpu;
use anyhow::Result;

/// Where the host's time goes, measured with host clocks around the scheduler's phases.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostTiming {
    /// Writing step uniforms, index lists and streamed samples.
    pub upload: std::time::Duration,
    /// Recording the compute pass.
    pub encode: std::time::Duration,
    /// From submission until the results are ready (the device computing).
    pub compute: std::time::Duration,
    /// Copying results out of mapped memory.
    pub readback: std::time::Duration,
}

/// Dispatches, submissions and host-clock time since the backend was built; a benchmark takes
/// the difference of two readings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub dispatches: u64,
    pub submissions: u64,
    pub timing: HostTiming,
}

/// Seconds per call of `dispatch`, timed over `reps` calls recorded into one compute pass and
/// one submission, after a warm-up submission of two calls (lavapipe compiles a shader at its
/// first dispatch). What the dispatches compute is the caller's business.
pub(super) fn time_dispatches(gpu: &Gpu, reps: usize, dispatch: impl Fn(&mut wgpu::ComputePass<'_>)) -> Result<f64> {
    let run = |n: usize| -> Result<f64> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..n {
                dispatch(&mut pass);
            }
        }
        let t = std::time::Instant::now();
        gpu.queue.submit([enc.finish()]);
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow::anyhow!("GPU error: {e}"))?;
        Ok(t.elapsed().as_secs_f64())
    };
    run(2)?;
    let secs = run(reps.max(1))?;
    Ok(secs / reps.max(1) as f64)
}
