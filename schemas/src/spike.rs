//! The data plane's one payload: [`SpikeTensor`].
//!
//! A spike tensor is the output of one node for one time step: a header (wire
//! version, source node, per-topic sequence number, time step, timestamp), a shape,
//! and a body in one of three encodings ([`Encoding`]):
//!
//! | encoding | body | best for |
//! |---|---|---|
//! | [`SpikeBody::Bitset`] | `u64` words, bit *i* of word *i/64* is element *i* | dense activity, fixed size |
//! | [`SpikeBody::Sparse`] | strictly increasing active indices (`u32`) | sparse activity |
//! | [`SpikeBody::Analog`] | one `f32` per element (currents, rates, ±1 spikes) | encoders, readouts |
//!
//! Tensors travel as rkyv archives. A sender writes the archive straight into the
//! buffer it will send ([`SpikeTensor::write_into`] with [`SpikeTensor::serialized_len`]);
//! a receiver calls [`SpikeTensor::view`], which validates the bytes and returns a
//! reference into them: no deserialization and no copy.
//!
//! The archive format requires a little-endian target; `view` needs the buffer to
//! start at a multiple of [`ALIGNMENT`].

use rkyv::rancor::{Error as RkyvError, Source};
use rkyv::ser::{Positional, Writer};
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::{SchemaError, WIRE_VERSION};

#[cfg(not(target_endian = "little"))]
compile_error!("evospike's spike tensors are read in place and need a little-endian target");

/// Alignment (bytes) a buffer must have for [`SpikeTensor::view`] to read it in place.
pub const ALIGNMENT: usize = 16;

/// Metadata of one spike tensor.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct SpikeHeader {
    /// [`WIRE_VERSION`] of the writer.
    pub wire_version: u16,
    /// Name of the node that produced the tensor.
    pub source: String,
    /// Per-topic sequence number, assigned by the publisher (0, 1, 2, …).
    pub seq: u64,
    /// Simulation time step the tensor belongs to.
    pub step: u64,
    /// Wall-clock time of publication, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// The elements of a spike tensor in one of three encodings.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub enum SpikeBody {
    /// One bit per element, packed into `u64` words (bit `i % 64` of word `i / 64`).
    Bitset(Vec<u64>),
    /// Indices of the active elements, strictly increasing.
    Sparse(Vec<u32>),
    /// One value per element; an element is active when its value is not zero.
    Analog(Vec<f32>),
}

/// Which encoding a body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// [`SpikeBody::Bitset`].
    Bitset,
    /// [`SpikeBody::Sparse`].
    Sparse,
    /// [`SpikeBody::Analog`].
    Analog,
}

impl Encoding {
    /// Lower-case name, as printed by tools.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Bitset => "bitset",
            Encoding::Sparse => "sparse",
            Encoding::Analog => "analog",
        }
    }
}

/// The spikes (or analog values) of one node at one time step.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub struct SpikeTensor {
    /// Who sent it, when, and for which step.
    pub header: SpikeHeader,
    /// Dimensions, outermost first; the element count is their product.
    pub shape: Vec<u32>,
    /// The elements.
    pub body: SpikeBody,
}

/// A borrowed body: the one place that knows how to read each encoding, shared by
/// owned tensors and archived views.
#[derive(Debug, Clone, Copy)]
enum BodyRef<'a> {
    Bitset(&'a [u64]),
    Sparse(&'a [u32]),
    Analog(&'a [f32]),
}

impl<'a> BodyRef<'a> {
    fn encoding(self) -> Encoding {
        match self {
            BodyRef::Bitset(_) => Encoding::Bitset,
            BodyRef::Sparse(_) => Encoding::Sparse,
            BodyRef::Analog(_) => Encoding::Analog,
        }
    }

    fn active_count(self) -> usize {
        match self {
            BodyRef::Bitset(words) => words.iter().map(|w| w.count_ones() as usize).sum(),
            BodyRef::Sparse(indices) => indices.len(),
            BodyRef::Analog(values) => values.iter().filter(|v| **v != 0.0).count(),
        }
    }

    fn active_indices(self) -> ActiveIndices<'a> {
        match self {
            BodyRef::Bitset(words) => ActiveIndices::Bitset {
                words,
                word: 0,
                bits: words.first().copied().unwrap_or(0),
            },
            BodyRef::Sparse(indices) => ActiveIndices::Sparse(indices.iter()),
            BodyRef::Analog(values) => ActiveIndices::Analog(values.iter().enumerate()),
        }
    }

    /// Checks the invariants bytecheck cannot know: lengths match the shape, sparse
    /// indices are in range and increasing, bitset padding is zero.
    fn validate(self, shape: &[u32]) -> Result<usize, SchemaError> {
        let len = element_count(shape)?;
        let body_len_error = |encoding: Encoding, found, expected, unit| SchemaError::BodyLength {
            encoding: encoding.name(),
            shape: shape.to_vec(),
            found,
            expected,
            unit,
        };
        match self {
            BodyRef::Bitset(words) => {
                let expected = bitset_words(len);
                if words.len() != expected {
                    return Err(body_len_error(
                        Encoding::Bitset,
                        words.len(),
                        expected,
                        "words",
                    ));
                }
                let tail_bits = len % 64;
                if tail_bits != 0 && words[expected - 1] >> tail_bits != 0 {
                    return Err(SchemaError::BitsetPadding { len });
                }
            }
            BodyRef::Sparse(indices) => {
                let mut previous: Option<u32> = None;
                for (position, &index) in indices.iter().enumerate() {
                    let reason = if index as usize >= len {
                        "out of range"
                    } else if previous.is_some_and(|p| index <= p) {
                        "not strictly increasing"
                    } else {
                        previous = Some(index);
                        continue;
                    };
                    return Err(SchemaError::SparseIndex {
                        index,
                        position,
                        len,
                        reason,
                    });
                }
            }
            BodyRef::Analog(values) => {
                if values.len() != len {
                    return Err(body_len_error(
                        Encoding::Analog,
                        values.len(),
                        len,
                        "values",
                    ));
                }
            }
        }
        Ok(len)
    }
}

/// Number of `u64` words a bitset of `len` elements needs.
pub fn bitset_words(len: usize) -> usize {
    len.div_ceil(64)
}

fn element_count(shape: &[u32]) -> Result<usize, SchemaError> {
    let invalid = |reason| SchemaError::Shape {
        shape: shape.to_vec(),
        reason,
    };
    if shape.is_empty() {
        return Err(invalid("no dimensions"));
    }
    let mut count: usize = 1;
    for &dim in shape {
        if dim == 0 {
            return Err(invalid("a dimension is zero"));
        }
        count = count
            .checked_mul(dim as usize)
            .ok_or_else(|| invalid("element count overflows"))?;
    }
    // Sparse indices are u32: a tensor must be addressable by them.
    if count > u32::MAX as usize + 1 {
        return Err(invalid("more than 2^32 elements"));
    }
    Ok(count)
}

/// Iterator over the indices of active elements, in increasing order.
#[derive(Debug, Clone)]
pub enum ActiveIndices<'a> {
    #[doc(hidden)]
    Bitset {
        words: &'a [u64],
        word: usize,
        bits: u64,
    },
    #[doc(hidden)]
    Sparse(std::slice::Iter<'a, u32>),
    #[doc(hidden)]
    Analog(std::iter::Enumerate<std::slice::Iter<'a, f32>>),
}

impl Iterator for ActiveIndices<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            ActiveIndices::Bitset { words, word, bits } => loop {
                if *bits != 0 {
                    let bit = bits.trailing_zeros();
                    *bits &= *bits - 1;
                    return Some((*word * 64) as u32 + bit);
                }
                *word += 1;
                *bits = *words.get(*word)?;
            },
            ActiveIndices::Sparse(indices) => indices.next().copied(),
            ActiveIndices::Analog(values) => {
                values.find(|(_, v)| **v != 0.0).map(|(i, _)| i as u32)
            }
        }
    }
}

/// Builds a [`SpikeTensor`] whose body is checked against its shape.
///
/// Obtained from [`SpikeTensor::builder`]; the terminal methods ([`bitset`](Self::bitset),
/// [`sparse`](Self::sparse), [`analog`](Self::analog), [`from_active`](Self::from_active))
/// validate and return the tensor.
#[derive(Debug, Clone)]
pub struct SpikeTensorBuilder {
    header: SpikeHeader,
    shape: Vec<u32>,
}

impl SpikeTensorBuilder {
    /// Sets the shape (default: one dimension, taken from the body's length).
    pub fn shape(mut self, shape: impl IntoIterator<Item = u32>) -> Self {
        self.shape = shape.into_iter().collect();
        self
    }

    /// Sets the time step.
    pub fn step(mut self, step: u64) -> Self {
        self.header.step = step;
        self
    }

    /// Sets the sequence number (publishers overwrite it).
    pub fn seq(mut self, seq: u64) -> Self {
        self.header.seq = seq;
        self
    }

    /// Sets the timestamp (publishers overwrite it).
    pub fn timestamp_ns(mut self, timestamp_ns: u64) -> Self {
        self.header.timestamp_ns = timestamp_ns;
        self
    }

    /// Finishes with a bitset body (shape defaults to `64 × words`).
    pub fn bitset(self, words: Vec<u64>) -> Result<SpikeTensor, SchemaError> {
        let default_len = words.len() * 64;
        self.finish(SpikeBody::Bitset(words), default_len)
    }

    /// Finishes with a sparse body of strictly increasing indices (shape is required
    /// unless the indices are empty).
    pub fn sparse(self, indices: Vec<u32>) -> Result<SpikeTensor, SchemaError> {
        let default_len = indices.last().map_or(1, |&last| last as usize + 1);
        self.finish(SpikeBody::Sparse(indices), default_len)
    }

    /// Finishes with an analog body (shape defaults to the number of values).
    pub fn analog(self, values: Vec<f32>) -> Result<SpikeTensor, SchemaError> {
        let default_len = values.len();
        self.finish(SpikeBody::Analog(values), default_len)
    }

    /// Finishes with a bitset body built from one flag per element.
    pub fn from_active(self, active: &[bool]) -> Result<SpikeTensor, SchemaError> {
        let mut words = vec![0u64; bitset_words(active.len())];
        for (i, _) in active.iter().enumerate().filter(|(_, a)| **a) {
            words[i / 64] |= 1 << (i % 64);
        }
        let len = active.len();
        let builder = if self.shape.is_empty() {
            self.shape([len as u32])
        } else {
            self
        };
        builder.bitset(words)
    }

    fn finish(mut self, body: SpikeBody, default_len: usize) -> Result<SpikeTensor, SchemaError> {
        if self.shape.is_empty() {
            self.shape = vec![u32::try_from(default_len.max(1)).unwrap_or(u32::MAX)];
        }
        let tensor = SpikeTensor {
            header: self.header,
            shape: self.shape,
            body,
        };
        tensor.validate()?;
        Ok(tensor)
    }
}

/// A writer that only counts: sizes an archive without writing it.
struct CountingWriter(usize);

impl Positional for CountingWriter {
    fn pos(&self) -> usize {
        self.0
    }
}

impl<E: Source> Writer<E> for CountingWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.0 += bytes.len();
        Ok(())
    }
}

/// The buffer given to [`SpikeTensor::write_into`] was too small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {capacity} bytes is too small for a {needed}-byte spike tensor")]
pub struct BufferTooSmall {
    /// Bytes the archive needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub capacity: usize,
}

impl SpikeTensor {
    /// Starts building a tensor sent by node `source`.
    pub fn builder(source: impl Into<String>) -> SpikeTensorBuilder {
        SpikeTensorBuilder {
            header: SpikeHeader {
                wire_version: WIRE_VERSION,
                source: source.into(),
                ..Default::default()
            },
            shape: Vec::new(),
        }
    }

    /// An all-silent bitset tensor of the given shape, to be filled in place step after step.
    pub fn zeros(source: impl Into<String>, shape: &[u32]) -> Result<SpikeTensor, SchemaError> {
        let len = element_count(shape)?;
        SpikeTensor::builder(source)
            .shape(shape.iter().copied())
            .bitset(vec![0; bitset_words(len)])
    }

    fn body_ref(&self) -> BodyRef<'_> {
        match &self.body {
            SpikeBody::Bitset(words) => BodyRef::Bitset(words),
            SpikeBody::Sparse(indices) => BodyRef::Sparse(indices),
            SpikeBody::Analog(values) => BodyRef::Analog(values),
        }
    }

    /// Checks the wire version, the shape and the body against the shape.
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_wire_version(self.header.wire_version)?;
        self.body_ref().validate(&self.shape).map(drop)
    }

    /// Number of elements (product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// Whether the tensor has no elements (never true for a valid tensor).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's encoding.
    pub fn encoding(&self) -> Encoding {
        self.body_ref().encoding()
    }

    /// Number of active (spiking / non-zero) elements.
    pub fn active_count(&self) -> usize {
        self.body_ref().active_count()
    }

    /// Indices of the active elements, increasing.
    pub fn active_indices(&self) -> ActiveIndices<'_> {
        self.body_ref().active_indices()
    }

    /// The same elements in another encoding. Analog → spikes keeps the non-zero
    /// elements; spikes → analog gives 1.0 for active and 0.0 for silent elements.
    pub fn to_encoding(&self, encoding: Encoding) -> SpikeTensor {
        let body = convert(self.body_ref(), self.len(), encoding);
        SpikeTensor {
            header: self.header.clone(),
            shape: self.shape.clone(),
            body,
        }
    }

    /// Size in bytes of this tensor's archive, as [`write_into`](Self::write_into)
    /// writes it: always a multiple of [`ALIGNMENT`], so it fills whole aligned
    /// blocks of shared-memory allocators.
    pub fn serialized_len(&self) -> usize {
        self.archive_len().next_multiple_of(ALIGNMENT)
    }

    /// Size of the bare archive (without leading padding).
    fn archive_len(&self) -> usize {
        match rkyv::api::high::to_bytes_in::<_, RkyvError>(self, CountingWriter(0)) {
            Ok(counter) => counter.0,
            // Counting cannot fail: the writer accepts everything and the types
            // serialize without fallible allocation.
            Err(err) => unreachable!("counting a spike tensor's archive failed: {err}"),
        }
    }

    /// Writes the archive into the first [`serialized_len`](Self::serialized_len)
    /// bytes of `buf` and returns that length. `buf` should start at an
    /// [`ALIGNMENT`]-aligned address to be readable in place.
    ///
    /// The archive's root sits at its end (rkyv's layout), so the length is padded
    /// at the front with zeros; readers must be given exactly the written prefix.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        const ZEROS: [u8; ALIGNMENT] = [0; ALIGNMENT];
        let archive_len = self.archive_len();
        let total = archive_len.next_multiple_of(ALIGNMENT);
        let capacity = buf.len();
        let too_small = || BufferTooSmall {
            needed: total,
            capacity,
        };
        if buf.len() < total {
            return Err(too_small());
        }
        let pad = total - archive_len;
        let mut writer = rkyv::ser::writer::Buffer::from(&mut buf[..total]);
        // The archive is a multiple of 8 bytes (its root is 8-aligned and sized), so
        // the pad is 0 or 8 and shifts nothing inside it; the length check below
        // would catch it if that ever changed.
        Writer::<RkyvError>::write(&mut writer, &ZEROS[..pad]).map_err(|_| too_small())?;
        match rkyv::api::high::to_bytes_in::<_, RkyvError>(self, writer) {
            Ok(written) if written.len() == total => Ok(total),
            _ => Err(too_small()),
        }
    }

    /// The archive in a freshly allocated, aligned buffer (for tests, files and
    /// transports without zero-copy buffers).
    pub fn to_aligned_bytes(&self) -> AlignedVec<ALIGNMENT> {
        let mut bytes = AlignedVec::<ALIGNMENT>::with_capacity(self.serialized_len());
        bytes.resize(self.serialized_len(), 0);
        let written = self.write_into(&mut bytes).unwrap_or_else(|err| {
            unreachable!("buffer sized by serialized_len was too small: {err}")
        });
        bytes.resize(written, 0);
        bytes
    }

    /// Validates untrusted bytes and returns the archived tensor inside them.
    ///
    /// Checks, in order: alignment of `bytes` to [`ALIGNMENT`], the archive's
    /// structure (bytecheck), the wire version, the shape, and the body against the
    /// shape. Never panics, whatever the bytes.
    pub fn view(bytes: &[u8]) -> Result<&ArchivedSpikeTensor, SchemaError> {
        let addr = bytes.as_ptr() as usize;
        if addr % ALIGNMENT != 0 {
            return Err(SchemaError::Misaligned {
                addr,
                required: ALIGNMENT,
            });
        }
        let archived = rkyv::access::<ArchivedSpikeTensor, RkyvError>(bytes).map_err(|err| {
            SchemaError::Malformed {
                len: bytes.len(),
                reason: err.to_string(),
            }
        })?;
        archived.validate()?;
        Ok(archived)
    }
}

impl SpikeTensor {
    /// Reads an archive that [`view`](Self::view) has already accepted, without
    /// checking it again (for holders of received payloads that validated once).
    ///
    /// # Safety
    /// `bytes` must be exactly the bytes a previous call to [`SpikeTensor::view`]
    /// returned `Ok` for, unchanged since, at the same address.
    pub unsafe fn view_unchecked(bytes: &[u8]) -> &ArchivedSpikeTensor {
        // SAFETY: the caller guarantees these bytes passed `view` (structure,
        // alignment and invariants) and have not changed.
        unsafe { rkyv::access_unchecked::<ArchivedSpikeTensor>(bytes) }
    }
}

fn check_wire_version(found: u16) -> Result<(), SchemaError> {
    if found == WIRE_VERSION {
        Ok(())
    } else {
        Err(SchemaError::WireVersion {
            found,
            supported: WIRE_VERSION,
        })
    }
}

fn convert(body: BodyRef<'_>, len: usize, encoding: Encoding) -> SpikeBody {
    match (body, encoding) {
        (BodyRef::Bitset(words), Encoding::Bitset) => SpikeBody::Bitset(words.to_vec()),
        (BodyRef::Sparse(indices), Encoding::Sparse) => SpikeBody::Sparse(indices.to_vec()),
        (BodyRef::Analog(values), Encoding::Analog) => SpikeBody::Analog(values.to_vec()),
        (_, Encoding::Bitset) => {
            let mut words = vec![0u64; bitset_words(len)];
            for i in body.active_indices() {
                words[i as usize / 64] |= 1 << (i % 64);
            }
            SpikeBody::Bitset(words)
        }
        (_, Encoding::Sparse) => SpikeBody::Sparse(body.active_indices().collect()),
        (_, Encoding::Analog) => {
            let mut values = vec![0f32; len];
            for i in body.active_indices() {
                values[i as usize] = 1.0;
            }
            SpikeBody::Analog(values)
        }
    }
}

// The archived primitives are the native ones on a little-endian target (checked
// at compile time above), so archived slices can be lent out as native slices.
const _: () = {
    assert!(std::mem::size_of::<rkyv::Archived<u64>>() == 8);
    assert!(std::mem::align_of::<rkyv::Archived<u64>>() == 8);
    assert!(std::mem::size_of::<rkyv::Archived<u32>>() == 4);
    assert!(std::mem::align_of::<rkyv::Archived<u32>>() == 4);
    assert!(std::mem::size_of::<rkyv::Archived<f32>>() == 4);
    assert!(std::mem::align_of::<rkyv::Archived<f32>>() == 4);
};

/// Reinterprets a slice of archived little-endian primitives as native ones.
///
/// # Safety
/// `A` must be the archived form of `T` with identical size, alignment and bit
/// layout on this target (little-endian, rkyv's aligned primitives).
unsafe fn native_slice<A, T>(archived: &[A]) -> &[T] {
    // SAFETY: the caller guarantees A and T share size, alignment and layout, so the
    // same memory holds `archived.len()` valid, aligned `T`s for the same lifetime.
    unsafe { std::slice::from_raw_parts(archived.as_ptr().cast::<T>(), archived.len()) }
}

impl ArchivedSpikeBody {
    fn as_ref(&self) -> BodyRef<'_> {
        // SAFETY (all three): rkyv::Archived<u64/u32/f32> are the rend little-endian
        // primitives, checked above to match the native types' size and alignment; on a
        // little-endian target their bits are the native bits.
        match self {
            ArchivedSpikeBody::Bitset(words) => {
                BodyRef::Bitset(unsafe { native_slice(words.as_slice()) })
            }
            ArchivedSpikeBody::Sparse(indices) => {
                BodyRef::Sparse(unsafe { native_slice(indices.as_slice()) })
            }
            ArchivedSpikeBody::Analog(values) => {
                BodyRef::Analog(unsafe { native_slice(values.as_slice()) })
            }
        }
    }
}

impl ArchivedSpikeTensor {
    fn validate(&self) -> Result<(), SchemaError> {
        check_wire_version(self.header.wire_version.to_native())?;
        let shape = self.shape();
        self.body.as_ref().validate(shape).map(drop)
    }

    /// The shape, borrowed from the archive.
    pub fn shape(&self) -> &[u32] {
        // SAFETY: Archived<u32> matches u32 on this target (see `native_slice`).
        unsafe { native_slice(self.shape.as_slice()) }
    }

    /// Number of elements (product of the shape).
    pub fn len(&self) -> usize {
        self.shape().iter().map(|&d| d as usize).product()
    }

    /// Whether the tensor has no elements (never true for a validated view).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's encoding.
    pub fn encoding(&self) -> Encoding {
        self.body.as_ref().encoding()
    }

    /// Number of active (spiking / non-zero) elements.
    pub fn active_count(&self) -> usize {
        self.body.as_ref().active_count()
    }

    /// Indices of the active elements, increasing.
    pub fn active_indices(&self) -> ActiveIndices<'_> {
        self.body.as_ref().active_indices()
    }

    /// The bitset words, if the body is a bitset (borrowed, no copy).
    pub fn bitset(&self) -> Option<&[u64]> {
        match self.body.as_ref() {
            BodyRef::Bitset(words) => Some(words),
            _ => None,
        }
    }

    /// The active indices, if the body is sparse (borrowed, no copy).
    pub fn sparse(&self) -> Option<&[u32]> {
        match self.body.as_ref() {
            BodyRef::Sparse(indices) => Some(indices),
            _ => None,
        }
    }

    /// The values, if the body is analog (borrowed, no copy).
    pub fn analog(&self) -> Option<&[f32]> {
        match self.body.as_ref() {
            BodyRef::Analog(values) => Some(values),
            _ => None,
        }
    }

    /// Source node name.
    pub fn source(&self) -> &str {
        self.header.source.as_str()
    }

    /// An owned copy, in the given encoding.
    pub fn to_owned_as(&self, encoding: Encoding) -> SpikeTensor {
        let header = SpikeHeader {
            wire_version: self.header.wire_version.to_native(),
            source: self.header.source.to_string(),
            seq: self.header.seq.to_native(),
            step: self.header.step.to_native(),
            timestamp_ns: self.header.timestamp_ns.to_native(),
        };
        SpikeTensor {
            header,
            shape: self.shape().to_vec(),
            body: convert(self.body.as_ref(), self.len(), encoding),
        }
    }

    /// An owned copy in the same encoding.
    pub fn to_owned_tensor(&self) -> SpikeTensor {
        self.to_owned_as(self.encoding())
    }
}

mod layout;
pub use layout::SpikeLayout;

#[cfg(test)]
mod tests;
