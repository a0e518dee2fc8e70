//! The IDX reader on arbitrary bytes (raw and gzip): it must return an error or an array whose
//! element count matches its dimensions, never panic.
#![no_main]
use gpu_nn::data::idx::{IdxData, decode_idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(arr) = decode_idx(data, "fuzz input") {
        let n: usize = arr.dims.iter().product();
        let len = match &arr.data {
            IdxData::U8(v) => v.len(),
            IdxData::F32(v) => v.len(),
        };
        assert_eq!(n, len, "dimensions {:?} but {len} elements", arr.dims);
    }
});
