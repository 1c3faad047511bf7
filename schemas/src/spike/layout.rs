//! [`SpikeLayout`]: where each field of a fixed-size spike archive sits, so a
//! producer can compute its spikes straight into the buffer that will be sent.
//!
//! A bitset or analog tensor of a given source and shape always archives to the
//! same bytes except for four places: the sequence number, the step, the timestamp
//! and the body's elements. A layout records those places once (by archiving a
//! silent tensor and measuring where rkyv put them); afterwards a buffer becomes a
//! valid archive by [`write_frame`](SpikeLayout::write_frame) (the few dozen bytes
//! of header, shape and root — never the body), the producer writing the body in
//! place ([`bitset_mut`](SpikeLayout::bitset_mut) /
//! [`analog_mut`](SpikeLayout::analog_mut)), and [`stamp`](SpikeLayout::stamp).
//! The result is byte for byte what [`SpikeTensor::write_into`] writes for the
//! same tensor.

use std::ops::Range;

use rkyv::util::AlignedVec;

use super::{bitset_words, element_count, Encoding, SpikeTensor, ALIGNMENT};
use crate::SchemaError;

/// The archive layout of bitset or analog tensors of one source and shape.
#[derive(Debug, Clone)]
pub struct SpikeLayout {
    /// The archive of the silent tensor; the frame is everything outside `body`.
    template: AlignedVec<ALIGNMENT>,
    encoding: Encoding,
    elements: usize,
    /// Byte range of the body's elements.
    body: Range<usize>,
    /// Byte offsets of the little-endian `u64` header fields.
    seq: usize,
    step: usize,
    timestamp_ns: usize,
}

/// Byte offset of `field` inside `base`.
fn offset_of<T: ?Sized>(base: &[u8], field: &T) -> usize {
    field as *const T as *const u8 as usize - base.as_ptr() as usize
}

impl SpikeLayout {
    /// The layout of a bitset tensor (one bit per element) sent by `source`.
    pub fn bitset(source: &str, shape: &[u32]) -> Result<SpikeLayout, SchemaError> {
        SpikeLayout::new(source, shape, Encoding::Bitset)
    }

    /// The layout of an analog tensor (one `f32` per element) sent by `source`.
    pub fn analog(source: &str, shape: &[u32]) -> Result<SpikeLayout, SchemaError> {
        SpikeLayout::new(source, shape, Encoding::Analog)
    }

    /// The layout of a tensor in `encoding`; a sparse body has no fixed size, so
    /// [`Encoding::Sparse`] is refused ([`SchemaError::Shape`]).
    pub fn new(
        source: &str,
        shape: &[u32],
        encoding: Encoding,
    ) -> Result<SpikeLayout, SchemaError> {
        let elements = element_count(shape)?;
        let builder = SpikeTensor::builder(source).shape(shape.iter().copied());
        let silent = match encoding {
            Encoding::Bitset => builder.bitset(vec![0; bitset_words(elements)])?,
            Encoding::Analog => builder.analog(vec![0.0; elements])?,
            Encoding::Sparse => {
                return Err(SchemaError::Shape {
                    shape: shape.to_vec(),
                    reason: "a sparse body has no fixed layout (use bitset or analog)",
                })
            }
        };
        let template = silent.to_aligned_bytes();
        let view = SpikeTensor::view(&template)?;
        let body = match (view.bitset(), view.analog()) {
            (Some(words), _) => {
                let start = offset_of(&template, words);
                start..start + std::mem::size_of_val(words)
            }
            (_, Some(values)) => {
                let start = offset_of(&template, values);
                start..start + std::mem::size_of_val(values)
            }
            _ => unreachable!("built as a bitset or analog tensor"),
        };
        let header = &view.header;
        let (seq, step, timestamp_ns) = (
            offset_of(&template, &header.seq),
            offset_of(&template, &header.step),
            offset_of(&template, &header.timestamp_ns),
        );
        Ok(SpikeLayout {
            template,
            encoding,
            elements,
            body,
            seq,
            step,
            timestamp_ns,
        })
    }

    /// Size of the archive in bytes (a multiple of [`ALIGNMENT`]).
    pub fn len(&self) -> usize {
        self.template.len()
    }

    /// Whether the archive is empty (never: every archive has a root).
    pub fn is_empty(&self) -> bool {
        self.template.is_empty()
    }

    /// The body's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Number of elements (product of the shape).
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Bytes of the archive outside the body (what [`write_frame`](Self::write_frame) writes).
    pub fn frame_len(&self) -> usize {
        self.len() - self.body.len()
    }

    fn check_buf(&self, buf: &[u8]) -> Result<(), SchemaError> {
        if buf.len() != self.len() {
            return Err(SchemaError::Malformed {
                len: buf.len(),
                reason: format!("the layout's archive is {} bytes", self.len()),
            });
        }
        let addr = buf.as_ptr() as usize;
        if addr % ALIGNMENT != 0 {
            return Err(SchemaError::Misaligned {
                addr,
                required: ALIGNMENT,
            });
        }
        Ok(())
    }

    /// Writes everything but the body into `buf` (exactly [`len`](Self::len) bytes,
    /// [`ALIGNMENT`]-aligned): header, shape and root. The body keeps whatever
    /// `buf` held; the producer writes every element of it.
    pub fn write_frame(&self, buf: &mut [u8]) -> Result<(), SchemaError> {
        self.check_buf(buf)?;
        let (head, rest) = buf.split_at_mut(self.body.start);
        head.copy_from_slice(&self.template[..self.body.start]);
        rest[self.body.len()..].copy_from_slice(&self.template[self.body.end..]);
        Ok(())
    }

    /// Writes the sequence number, step and timestamp into a framed `buf`.
    pub fn stamp(&self, buf: &mut [u8], seq: u64, step: u64, timestamp_ns: u64) {
        for (at, value) in [
            (self.seq, seq),
            (self.step, step),
            (self.timestamp_ns, timestamp_ns),
        ] {
            buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Checks what a producer may have got wrong in the body: a bitset's bits past
    /// the last element must be zero (receivers reject the tensor otherwise).
    pub fn check_body(&self, buf: &[u8]) -> Result<(), SchemaError> {
        let tail_bits = self.elements % 64;
        if self.encoding == Encoding::Bitset && tail_bits != 0 {
            let last = self.body.end - 8;
            let word = u64::from_le_bytes(buf[last..self.body.end].try_into().unwrap_or([0; 8]));
            if word >> tail_bits != 0 {
                return Err(SchemaError::BitsetPadding { len: self.elements });
            }
        }
        Ok(())
    }

    /// The body of a bitset layout as words, borrowed from `buf` (`None` for an
    /// analog layout, or a `buf` that is not this layout's size and alignment).
    pub fn bitset_mut<'a>(&self, buf: &'a mut [u8]) -> Option<&'a mut [u64]> {
        if self.encoding != Encoding::Bitset || self.check_buf(buf).is_err() {
            return None;
        }
        let body = &mut buf[self.body.clone()];
        // SAFETY: `body` lies inside `buf`, which is ALIGNMENT-aligned, and starts at
        // the offset where rkyv placed the archived `u64` words (8-aligned, whole
        // words); every bit pattern is a valid u64, and the returned slice borrows
        // `buf` mutably for its lifetime.
        let (prefix, words, suffix) = unsafe { body.align_to_mut::<u64>() };
        (prefix.is_empty() && suffix.is_empty()).then_some(words)
    }

    /// The body of an analog layout as values, borrowed from `buf` (`None` for a
    /// bitset layout, or a `buf` that is not this layout's size and alignment).
    pub fn analog_mut<'a>(&self, buf: &'a mut [u8]) -> Option<&'a mut [f32]> {
        if self.encoding != Encoding::Analog || self.check_buf(buf).is_err() {
            return None;
        }
        let body = &mut buf[self.body.clone()];
        // SAFETY: as in `bitset_mut`, for the archived `f32` values (4-aligned);
        // every bit pattern is a valid f32.
        let (prefix, values, suffix) = unsafe { body.align_to_mut::<f32>() };
        (prefix.is_empty() && suffix.is_empty()).then_some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(len: usize, fill: u8) -> AlignedVec<ALIGNMENT> {
        let mut buf = AlignedVec::<ALIGNMENT>::with_capacity(len);
        buf.resize(len, fill);
        buf
    }

    #[test]
    fn a_framed_bitset_buffer_is_the_archive_write_into_writes() {
        for size in [4u32, 63, 64, 65, 1000, 4096] {
            let layout = SpikeLayout::bitset("layer1", &[size]).unwrap();
            // Stale bytes everywhere, as a reused shared-memory chunk would hold.
            let mut buf = aligned(layout.len(), 0xA5);
            layout.write_frame(&mut buf).unwrap();
            let words = layout.bitset_mut(&mut buf).unwrap();
            words.fill(0);
            words[0] = 0b1001;
            layout.stamp(&mut buf, 7, 42, 123);
            layout.check_body(&buf).unwrap();

            let mut expected = SpikeTensor::zeros("layer1", &[size]).unwrap();
            if let crate::SpikeBody::Bitset(w) = &mut expected.body {
                w[0] = 0b1001;
            }
            expected.header.seq = 7;
            expected.header.step = 42;
            expected.header.timestamp_ns = 123;
            assert_eq!(&buf[..], &expected.to_aligned_bytes()[..], "size {size}");
            let view = SpikeTensor::view(&buf).unwrap();
            assert_eq!(view.active_indices().collect::<Vec<_>>(), vec![0, 3]);
            assert_eq!(view.header.step.to_native(), 42);
        }
    }

    #[test]
    fn an_analog_layout_lends_values() {
        let layout = SpikeLayout::analog("enc", &[2, 3]).unwrap();
        let mut buf = aligned(layout.len(), 0xFF);
        layout.write_frame(&mut buf).unwrap();
        assert!(layout.bitset_mut(&mut buf).is_none());
        let values = layout.analog_mut(&mut buf).unwrap();
        assert_eq!(values.len(), 6);
        values.copy_from_slice(&[0.0, 1.5, 0.0, 0.0, -2.0, 0.0]);
        layout.stamp(&mut buf, 1, 2, 3);
        let view = SpikeTensor::view(&buf).unwrap();
        assert_eq!(view.shape(), &[2, 3]);
        assert_eq!(view.analog().unwrap(), &[0.0, 1.5, 0.0, 0.0, -2.0, 0.0]);
        assert_eq!(view.source(), "enc");
        assert!(
            layout.frame_len() < 100,
            "the frame is small: {}",
            layout.frame_len()
        );
    }

    #[test]
    fn stale_padding_bits_are_caught_before_sending() {
        let layout = SpikeLayout::bitset("l", &[70]).unwrap();
        let mut buf = aligned(layout.len(), 0);
        layout.write_frame(&mut buf).unwrap();
        layout.bitset_mut(&mut buf).unwrap()[1] = 1 << 6;
        assert_eq!(
            layout.check_body(&buf),
            Err(SchemaError::BitsetPadding { len: 70 })
        );
        layout.bitset_mut(&mut buf).unwrap()[1] = 1 << 5;
        assert_eq!(layout.check_body(&buf), Ok(()));
    }

    #[test]
    fn wrong_buffers_and_sparse_layouts_are_refused() {
        assert!(matches!(
            SpikeLayout::new("l", &[10], Encoding::Sparse),
            Err(SchemaError::Shape { .. })
        ));
        assert!(matches!(
            SpikeLayout::bitset("l", &[0]),
            Err(SchemaError::Shape { .. })
        ));
        let layout = SpikeLayout::bitset("l", &[10]).unwrap();
        let mut short = aligned(layout.len() - 16, 0);
        assert!(layout.write_frame(&mut short).is_err());
        assert!(layout.bitset_mut(&mut short).is_none());
        let mut long = aligned(layout.len() + 1, 0);
        assert!(layout.write_frame(&mut long[1..]).is_err());
    }
}
