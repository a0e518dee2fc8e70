//! The model and checkpoint readers on arbitrary bytes (safetensors header, metadata JSON,
//! checksum, tensors): an error or parameters shaped like the architecture they claim, never a
//! panic.
#![no_main]
use gpu_nn::core::checkpoint::{checkpoint_from_bytes, model_from_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((params, spec, _)) = model_from_bytes(data, "fuzz input") {
        params.check_shapes(&spec, "fuzz input").expect("a model read back must fit its architecture");
    }
    if let Ok((ck, _)) = checkpoint_from_bytes(data, "fuzz input") {
        ck.params.check_shapes(&ck.meta.architecture, "fuzz input").expect("a checkpoint read back must fit its architecture");
    }
});
