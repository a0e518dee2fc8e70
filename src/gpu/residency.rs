//! Where the samples of a micro-batch come from. A split that fits one storage binding is
//! resident: uploaded once, on attach (pixels packed into u32 words, labels), with its own
//! gather bind group and gather dims slot. One that does not, or the training split under
//! `--stream`, is streamed: each submission's samples are packed by the host into one of two
//! stream slots, taken in turn. The index list (the sample order of resident training) lives
//! here too, because every gather bind group references it: growing it rebinds them all.

use super::device::{Device, storage};
use super::kernels::{GatherDims, bind};
use super::layout::max_binding;
use crate::nn::backend::Split;
use crate::data::{Dataset, Pixels};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::sync::Arc;

/// Where the samples of a micro-batch come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// A resident split, through the index list (training) or in order (evaluation).
    Resident(Split, bool),
    /// Stream slot s, samples in order.
    Stream(usize),
}

/// The gather dims slot of the stream slots (resident splits take 0–2, `gather_index`).
const STREAM_GATHER: usize = 3;

struct ResidentData {
    data: Arc<Dataset>,
    bind_group: wgpu::BindGroup,
    /// Its gather dims slot (`Layout::gather_slot`).
    dims_slot: usize,
    _images: wgpu::Buffer,
    _labels: wgpu::Buffer,
}

struct StreamSlot {
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

pub(super) struct Residency {
    resident: HashMap<Split, ResidentData>,
    streamed: HashMap<Split, Arc<Dataset>>,
    stream_slots: Vec<StreamSlot>,
    /// Samples per stream slot.
    stream_cap: usize,
    force_stream: bool,
    index: wgpu::Buffer,
    index_cap: usize,
}

/// u32 words per sample: bytes packed four to a word, or one f32 per word.
pub(super) fn words(data: &Dataset) -> usize {
    match data.pixels {
        Pixels::U8(_) => data.sample_len.div_ceil(4),
        Pixels::F64(_) => data.sample_len,
    }
}

/// Packs samples `idx` (in that order) into u32 words.
fn pack(data: &Dataset, idx: impl Iterator<Item = usize>) -> Vec<u32> {
    let len = data.sample_len;
    let w = words(data);
    let mut out = Vec::new();
    for i in idx {
        match &data.pixels {
            Pixels::U8(v) => {
                let row = &v[i * len..(i + 1) * len];
                for c in 0..w {
                    let mut word = 0u32;
                    for b in 0..4 {
                        if let Some(&p) = row.get(c * 4 + b) {
                            word |= (p as u32) << (8 * b);
                        }
                    }
                    out.push(word);
                }
            }
            Pixels::F64(v) => out.extend(v[i * len..(i + 1) * len].iter().map(|&x| (x as f32).to_bits())),
        }
    }
    out
}

/// The gather dims of samples shaped like `data`.
fn gather_dims(dev: &Device, data: &Dataset) -> GatherDims {
    GatherDims {
        len: data.sample_len as u32,
        words: words(data) as u32,
        is_bytes: matches!(data.pixels, Pixels::U8(_)) as u32,
        x_off: 0,
        mean: dev.spec.input_norm.mean as f32,
        std: dev.spec.input_norm.std as f32,
        _pad: [0; 2],
    }
}

/// A gather bind group reading `images` and `labels` through `index`.
fn bind_gather(dev: &Device, images: &wgpu::Buffer, labels: &wgpu::Buffer, index: &wgpu::Buffer) -> wgpu::BindGroup {
    bind(&dev.gpu, &dev.k.gather, &dev.dims, &dev.steps, &[images, labels, index, &dev.acts, &dev.batch_labels])
}

/// The gather dims slot of a resident split.
fn gather_index(s: Split) -> usize {
    match s {
        Split::Train => 0,
        Split::Val => 1,
        Split::Test => 2,
    }
}

impl Residency {
    /// Nothing attached yet; an index list of 1024 entries. `force_stream` streams the training
    /// split even when it fits.
    pub(super) fn new(dev: &Device, force_stream: bool) -> Residency {
        Residency {
            resident: HashMap::new(),
            streamed: HashMap::new(),
            stream_slots: Vec::new(),
            stream_cap: 0,
            force_stream,
            index: storage(&dev.gpu, "index", 4 * 1024),
            index_cap: 1024,
        }
    }

    /// Uploads `data` for `split` if it fits a binding (and is not the training split under
    /// `force_stream`), else sets the stream slots up for it. Only one split can be streamed
    /// besides the training split.
    pub(super) fn attach(&mut self, dev: &Device, split: Split, data: Arc<Dataset>) -> Result<()> {
        let bytes = 4 * words(&data) * data.len();
        let max_bind = max_binding(&dev.gpu.limits);
        let fits = bytes <= max_bind && 4 * data.len() <= max_bind;
        if fits && !(self.force_stream && split == Split::Train) {
            let r = self.upload(dev, data, gather_index(split));
            self.resident.insert(split, r);
        } else {
            if !fits {
                eprintln!(
                    "note: {} ({} bytes) exceeds the adapter's max_storage_buffer_binding_size ({max_bind} bytes); streaming it in chunks",
                    data.source, bytes
                );
            }
            if split != Split::Train && !self.streamed.is_empty() && !self.streamed.contains_key(&split) {
                bail!("{}: only one dataset can be streamed at a time; it exceeds the device's binding limit of {max_bind} bytes", data.source);
            }
            self.ensure_stream_slots(dev, &data);
            self.streamed.insert(split, data);
        }
        Ok(())
    }

    /// Grows the index list to hold `n` entries, rebinding (and so re-uploading) every
    /// resident split and rebinding the stream slots.
    pub(super) fn ensure_index(&mut self, dev: &Device, n: usize) {
        if n > self.index_cap {
            self.index_cap = n.next_power_of_two();
            self.index = storage(&dev.gpu, "index", 4 * self.index_cap);
            // the gather bind groups of resident splits reference the index buffer
            let splits: Vec<Split> = self.resident.keys().copied().collect();
            for s in splits {
                let data = self.resident.remove(&s).unwrap().data;
                let r = self.upload(dev, data, gather_index(s));
                self.resident.insert(s, r);
            }
            for i in 0..self.stream_slots.len() {
                let (img, lab) = (&self.stream_slots[i].images, &self.stream_slots[i].labels);
                let bg = bind_gather(dev, img, lab, &self.index);
                self.stream_slots[i].bind_group = bg;
            }
        }
    }

    fn upload(&self, dev: &Device, data: Arc<Dataset>, slot: usize) -> ResidentData {
        let images = storage(&dev.gpu, "images", 4 * words(&data) * data.len());
        let packed = pack(&data, 0..data.len());
        dev.gpu.queue.write_buffer(&images, 0, bytemuck::cast_slice(&packed));
        let labels = storage(&dev.gpu, "labels", 4 * data.len());
        let l: Vec<u32> = data.labels.iter().map(|&x| x as u32).collect();
        dev.gpu.queue.write_buffer(&labels, 0, bytemuck::cast_slice(&l));
        let bind_group = bind_gather(dev, &images, &labels, &self.index);
        dev.write_dims(dev.layout.gather_slot(slot), &gather_dims(dev, &data));
        ResidentData { data, bind_group, dims_slot: slot, _images: images, _labels: labels }
    }

    /// Creates the two stream slots for samples shaped like `data`.
    fn ensure_stream_slots(&mut self, dev: &Device, data: &Dataset) {
        if !self.stream_slots.is_empty() {
            return;
        }
        self.stream_cap = stream_capacity(dev.layout.rows_cap(), words(data), max_binding(&dev.gpu.limits));
        for _ in 0..2 {
            let images = storage(&dev.gpu, "stream images", 4 * words(data) * self.stream_cap);
            let labels = storage(&dev.gpu, "stream labels", 4 * self.stream_cap);
            let bind_group = bind_gather(dev, &images, &labels, &self.index);
            self.stream_slots.push(StreamSlot { images, labels, bind_group });
        }
        dev.write_dims(dev.layout.gather_slot(STREAM_GATHER), &gather_dims(dev, data));
    }

    pub(super) fn data_of(&self, split: Split) -> Result<Arc<Dataset>> {
        if let Some(r) = self.resident.get(&split) {
            return Ok(r.data.clone());
        }
        if let Some(d) = self.streamed.get(&split) {
            return Ok(d.clone());
        }
        bail!("no {} data attached to the GPU backend", split.name())
    }

    /// Training reads the resident split through the index list, else stream slots.
    pub(super) fn train_source(&self) -> Source {
        if self.resident.contains_key(&Split::Train) { Source::Resident(Split::Train, true) } else { Source::Stream(0) }
    }

    /// Evaluation reads `split` in order, resident or streamed.
    pub(super) fn eval_source(&self, split: Split) -> Source {
        if self.resident.contains_key(&split) { Source::Resident(split, false) } else { Source::Stream(0) }
    }

    /// Most rows one submission can stream (unbounded when nothing streams).
    pub(super) fn stream_cap(&self) -> usize {
        if self.stream_slots.is_empty() { usize::MAX } else { self.stream_cap }
    }

    /// What the gather of a micro-batch from `source` binds, when streamed samples sit in
    /// stream slot `slot`: its bind group, its gather dims slot and the words per sample.
    pub(super) fn gather(&self, dev: &Device, source: Source, slot: usize) -> Result<(&wgpu::BindGroup, usize, usize)> {
        Ok(match source {
            Source::Resident(split, _) => {
                let r = &self.resident[&split];
                (&r.bind_group, dev.layout.gather_slot(r.dims_slot), words(&r.data))
            }
            Source::Stream(_) => {
                let d = self.streamed.values().next().context("stream slot without data")?;
                (&self.stream_slots[slot].bind_group, dev.layout.gather_slot(STREAM_GATHER), words(d))
            }
        })
    }

    /// Writes a submission's index list (dataset indices of its resident training rows).
    pub(super) fn write_index(&self, dev: &Device, samples: &[u32]) {
        dev.gpu.queue.write_buffer(&self.index, 0, bytemuck::cast_slice(samples));
    }

    /// Packs samples `samples` of `data`, in order, into stream slot `slot`.
    pub(super) fn write_stream(&self, dev: &Device, slot: usize, data: &Dataset, samples: &[usize]) {
        let packed = pack(data, samples.iter().copied());
        let labels: Vec<u32> = samples.iter().map(|&s| data.labels[s] as u32).collect();
        dev.gpu.queue.write_buffer(&self.stream_slots[slot].images, 0, bytemuck::cast_slice(&packed));
        dev.gpu.queue.write_buffer(&self.stream_slots[slot].labels, 0, bytemuck::cast_slice(&labels));
    }
}

/// Samples of one stream slot: a few micro-batches' worth (at least 4096), as long as the
/// slot's images (`words` u32 per sample) fit one binding. Never below `rows_cap`, which the
/// binding limit already bounds (a sample's activations outweigh its words).
fn stream_capacity(rows_cap: usize, words: usize, max_bind: usize) -> usize {
    rows_cap.max(4096).min(max_bind / (4 * words)).max(rows_cap)
}

#[cfg(test)]
mod tests {
    use super::stream_capacity;

    #[test]
    fn a_stream_slot_fits_one_binding() {
        assert_eq!(stream_capacity(1024, 196, 128 << 20), 4096);
        // very wide inputs: fewer samples per slot, still at least a micro-batch
        let (words, max_bind) = (200_000, 128 << 20);
        let cap = stream_capacity(100, words, max_bind);
        assert!(cap >= 100 && 4 * words * cap <= max_bind, "{cap}");
    }
}
