//! Testing aids, apart from the training path: poisoning the work buffers so a test sees any
//! element a kernel failed to write (`GpuBackend::poison`), losing the device mid-run to
//! exercise the path a real device loss takes (`GpuBackend::lose_device_at_step`), and the
//! dropout kernel's masks as it draws them (`GpuBackend::dropout_masks`) and the augmentation
//! kernels' pictures (`GpuBackend::augmented`).

use super::device::{Device, wait};
use super::dropout::Direction;
use super::kernels::StepUniform;
use super::scheduler::Scheduler;
use anyhow::{Result, bail};

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

/// The forward dropout kernel run on activations of 1.0: per layer with dropout (0 = the
/// input), its mask for `rows` rows from batch row `row_base` at optimiser step `step`, as the
/// values it leaves (1/(1 − p) or 0). Overwrites the activations and the first step entry.
pub(super) fn dropout_masks(dev: &Device, step: u64, rows: usize, row_base: usize) -> Result<Vec<(usize, Vec<f32>)>> {
    let Some(d) = dev.dropout.as_ref() else { bail!("the backend has no dropout") };
    if rows == 0 || rows > dev.layout.rows_cap() {
        bail!("dropout_masks: {rows} rows (1 to {} allowed)", dev.layout.rows_cap());
    }
    let entry = StepUniform { rows: rows as u32, train: 1, t: step as u32, row_base: row_base as u32, ..Default::default() };
    dev.gpu.queue.write_buffer(&dev.steps, 0, bytemuck::bytes_of(&entry));
    let layers: Vec<usize> = (0..dev.spec.layers.len() - 1).filter(|&l| d.drops(l)).collect();
    let mut enc = dev.gpu.device.create_command_encoder(&Default::default());
    for &l in &layers {
        dev.write_f32(&dev.acts, dev.layout.layer_off(l), &vec![1.0; rows * dev.spec.layers[l]]);
    }
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for &l in &layers {
            d.encode(dev, &mut pass, Direction::Forward, l, rows, 0);
        }
    }
    dev.gpu.queue.submit([enc.finish()]);
    let mut out = Vec::new();
    for &l in &layers {
        out.push((l, wait(dev.read_f32(&dev.acts, dev.layout.layer_off(l), rows * dev.spec.layers[l]))?));
    }
    dev.gpu.check("drawing dropout masks")?;
    Ok(out)
}

/// The augmentation kernels run on `x` (`rows` pictures as the model's inputs, row-major) as
/// batch rows `row_base..` of optimiser step `step`: the pictures they leave in the activations.
pub(super) fn augmented(dev: &Device, step: u64, row_base: usize, x: &[f32]) -> Result<Vec<f32>> {
    let Some(a) = dev.augment.as_ref() else { bail!("the backend has no augmentation") };
    let n = dev.spec.input_size();
    let rows = x.len() / n;
    if rows == 0 || rows > dev.layout.rows_cap() || x.len() != rows * n {
        bail!("augmented: {} values are not 1 to {} pictures of {n}", x.len(), dev.layout.rows_cap());
    }
    let entry = StepUniform { rows: rows as u32, train: 1, t: step as u32, row_base: row_base as u32, ..Default::default() };
    dev.gpu.queue.write_buffer(&dev.steps, 0, bytemuck::bytes_of(&entry));
    dev.gpu.queue.write_buffer(&dev.acts, 4 * dev.layout.layer_off(0) as u64, bytemuck::cast_slice(x));
    let mut enc = dev.gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        a.encode(dev, &mut pass, rows, 0);
    }
    dev.gpu.queue.submit([enc.finish()]);
    let out = wait(dev.read_f32(&dev.acts, dev.layout.layer_off(0), rows * n))?;
    dev.gpu.check("augmenting pictures")?;
    Ok(out)
}
