//! TFRecord framing, the container of an event file: each record is its length (u64, little
//! endian), the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data.

/// TFRecord's CRC mask: rotated right by 15 bits, plus this, so that a CRC of data that itself
/// holds CRCs does not degenerate.
const MASK_DELTA: u32 = 0xa282_ead8;

/// Bytes of a record around its data: length, its CRC, the data's CRC.
pub const OVERHEAD: usize = 8 + 4 + 4;

/// The masked CRC-32C (Castagnoli) of `bytes`, as TFRecord stores it.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends `data` to `out` as one record.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.reserve(data.len() + OVERHEAD);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The records of `bytes` up to the first that is torn (cut short by a killed writer, or still
/// being written) or fails a CRC, and the length of that whole-record prefix.
pub struct Framed<'a> {
    pub records: Vec<&'a [u8]>,
    pub valid_len: usize,
}

/// Splits `bytes` into records (`Framed`); never reads past a length it has not checked.
pub fn unframe(bytes: &[u8]) -> Framed<'_> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 12) {
        let (len, len_crc) = header.split_at(8);
        if masked_crc(len) != u32::from_le_bytes(len_crc.try_into().unwrap_or_default()) {
            break;
        }
        let len = u64::from_le_bytes(len.try_into().unwrap_or_default());
        let Some(end) = usize::try_from(len).ok().and_then(|n| (at + 12).checked_add(n)).filter(|&e| e.checked_add(4).is_some_and(|e| e <= bytes.len())) else {
            break;
        };
        let data = &bytes[at + 12..end];
        if masked_crc(data) != u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap_or_default()) {
            break;
        }
        records.push(data);
        at = end + 4;
    }
    Framed { records, valid_len: at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_crc32c_masked_as_tfrecord_masks_it() {
        // the CRC-32C check value, and TFRecord's mask of it worked out by hand:
        // ((0xe3069283 >> 15) | (0xe3069283 << 17)) + 0xa282ead8, modulo 2^32
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn records_round_trip_and_a_torn_or_corrupt_tail_ends_them() {
        let datas: [&[u8]; 4] = [b"", b"a", &[7u8; 300], b"last"];
        let mut bytes = Vec::new();
        for d in datas {
            frame(d, &mut bytes);
        }
        let f = unframe(&bytes);
        assert_eq!(f.records, datas);
        assert_eq!(f.valid_len, bytes.len());
        let last = bytes.len() - (4 + OVERHEAD);
        // every cut inside the last record leaves the three before it
        for cut in last..bytes.len() {
            let f = unframe(&bytes[..cut]);
            assert_eq!((f.records.len(), f.valid_len), (3, last), "cut at {cut}");
        }
        // a flipped bit in the data, or in the length, stops at that record
        let mut bad = bytes.clone();
        bad[last + 13] ^= 1;
        assert_eq!(unframe(&bad).records.len(), 3);
        let mut bad = bytes.clone();
        bad[last] ^= 0x80;
        assert_eq!(unframe(&bad).valid_len, last);
        // a length as large as a u64 goes is refused, not allocated
        let mut huge = bytes[..last].to_vec();
        let len = u64::MAX.to_le_bytes();
        huge.extend_from_slice(&len);
        huge.extend_from_slice(&masked_crc(&len).to_le_bytes());
        huge.extend_from_slice(b"xxxx");
        assert_eq!(unframe(&huge).records.len(), 3);
    }
}
