//! Testing aids, apart from the training path: poisoning the work buffers so a test sees any
//! element a kernel failed to write (`GpuBackend::poison`), and losing the device mid-run to
//! exercise the path a real device loss takes (`GpuBackend::lose_device_at_step`).

use super::device::Device;
use super::scheduler::Scheduler;
use anyhow::Result;

/// Fills every work buffer (activations, pre-activations, deltas, gradients, statistics,
/// gradient clipping's sums) with NaN, the predictions with u32::MAX.
pub(super) fn poison(dev: &Device, sched: &Scheduler) -> Result<()> {
    let [row_loss, row_pred] = sched.stats();
    // the clip buffer too: the update must read only a scale this step's reduction wrote
    for buf in [&dev.acts, &dev.pre, &dev.dlt, row_loss, &dev.clip] {
        let nan = vec![f32::NAN; (buf.size() / 4) as usize];
        dev.gpu.queue.write_buffer(buf, 0, bytemuck::cast_slice(&nan));
    }
    // gradients tensor by tensor: the alignment gaps must stay zero (the optimiser runs
    // over them too, and zero parameters with zero gradients stay zero)
    for i in 0..dev.spec.num_layers() {
        let (n_in, n_out) = dev.spec.layer_dims(i);
        let (w, b) = dev.layout.param_off(i);
        dev.write_f32(&dev.grads, w, &vec![f64::NAN; n_in * n_out]);
        dev.write_f32(&dev.grads, b, &vec![f64::NAN; n_out]);
    }
    let bad = vec![u32::MAX; (row_pred.size() / 4) as usize];
    dev.gpu.queue.write_buffer(row_pred, 0, bytemuck::cast_slice(&bad));
    dev.gpu.check("poisoning buffers")
}

/// Destroys the device if a loss was asked for at step `at` and the run has taken `step` steps.
pub(super) fn lose_device_if_due(dev: &Device, at: Option<u64>, step: u64) {
    if at.is_some_and(|n| step >= n) {
        dev.gpu.device.destroy();
    }
}
