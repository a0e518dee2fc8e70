//! Benchmark hooks: what the scheduler counts as it runs (dispatches, submissions, host-clock
//! time per phase, device time from timestamp queries), read through `GpuBackend::counters`,
//! and the harness behind `GpuBackend::time_matmul`.

use super::context::Gpu;
use super::device::{map_read_timed, wait};
use anyhow::Result;
use std::time::Duration;

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
    /// The device's own time from the start to the end of every compute pass (timestamp
    /// queries); None where the adapter has none.
    pub device: Option<Duration>,
}

/// Timestamps written at the start and the end of a compute pass, where the device has
/// timestamp queries: the device's own time for the pass, free of submission and wake-up
/// latency on the host.
pub(super) struct PassTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    period_ns: f64,
}

/// Bytes `PassTimer::copy_to` writes: two u64 ticks.
pub(super) const TIMER_BYTES: u64 = 16;

impl PassTimer {
    pub(super) fn new(gpu: &Gpu) -> Option<PassTimer> {
        if !gpu.timestamps {
            return None;
        }
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("pass timer"), ty: wgpu::QueryType::Timestamp, count: 2 });
        // resolving needs its own buffer (QUERY_RESOLVE, 256-byte aligned offsets)
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pass timer resolve"),
            size: 256,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(PassTimer { set, resolve, period_ns: gpu.queue.get_timestamp_period() as f64 })
    }

    /// The pass descriptor's `timestamp_writes`.
    pub(super) fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites { query_set: &self.set, beginning_of_pass_write_index: Some(0), end_of_pass_write_index: Some(1) }
    }

    /// After the pass: resolves the two timestamps and copies them to `dst` at `offset`.
    pub(super) fn copy_to(&self, enc: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer, offset: u64) {
        enc.resolve_query_set(&self.set, 0..2, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, dst, offset, TIMER_BYTES);
    }

    /// The pass's duration from the `TIMER_BYTES` read back.
    pub(super) fn duration(&self, bytes: &[u8]) -> Duration {
        let t: &[u64] = bytemuck::cast_slice(&bytes[..TIMER_BYTES as usize]);
        Duration::from_nanos((t[1].saturating_sub(t[0]) as f64 * self.period_ns) as u64)
    }
}

/// One timed batch of dispatches: host seconds per dispatch (submit to completion, over the
/// batch) and, where the device has timestamp queries, the device's own seconds per dispatch.
#[derive(Clone, Copy, Debug)]
pub struct DispatchTiming {
    pub host: f64,
    pub device: Option<f64>,
}

/// Seconds per call of `dispatch`, timed over `reps` calls recorded into one compute pass and
/// one submission, after a warm-up submission of one call (lavapipe compiles a shader at its
/// first dispatch). What the dispatches compute is the caller's business.
pub(super) fn time_dispatches(gpu: &Gpu, reps: usize, dispatch: impl Fn(&mut wgpu::ComputePass<'_>)) -> Result<DispatchTiming> {
    let timer = PassTimer::new(gpu);
    let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timer readback"),
        size: TIMER_BYTES,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let run = |n: usize| -> Result<DispatchTiming> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let desc = wgpu::ComputePassDescriptor { label: Some("timed dispatches"), timestamp_writes: timer.as_ref().map(PassTimer::writes) };
            let mut pass = enc.begin_compute_pass(&desc);
            for _ in 0..n {
                dispatch(&mut pass);
            }
        }
        if let Some(t) = &timer {
            t.copy_to(&mut enc, &readback, 0);
        }
        let t = web_time::Instant::now();
        gpu.queue.submit([enc.finish()]);
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow::anyhow!("GPU error: {e}"))?;
        let host = t.elapsed().as_secs_f64();
        let device = match &timer {
            Some(timer) => Some(timer.duration(&wait(map_read_timed(gpu, &readback, TIMER_BYTES))?.0).as_secs_f64()),
            None => None,
        };
        Ok(DispatchTiming { host, device })
    };
    run(1)?;
    let n = reps.max(1);
    let all = run(n)?;
    Ok(DispatchTiming { host: all.host / n as f64, device: all.device.map(|d| d / n as f64) })
}
