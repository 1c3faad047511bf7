/// Why bytes could not be read as an evospike wire type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The bytes are not a structurally valid archive (bytecheck failed).
    #[error("malformed spike tensor archive ({len} bytes): {reason}")]
    Malformed {
        /// Length of the rejected payload.
        len: usize,
        /// What bytecheck reported.
        reason: String,
    },
    /// The buffer does not start at an address the archive's types can be read from.
    #[error("spike tensor buffer at {addr:#x} is not aligned to {required} bytes")]
    Misaligned {
        /// Address of the first byte.
        addr: usize,
        /// Alignment the archive needs.
        required: usize,
    },
    /// The payload was written by an incompatible wire version.
    #[error("unsupported wire version {found} (this build reads version {supported})")]
    WireVersion {
        /// Version found in the payload.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The shape is empty, has a zero or its element count overflows.
    #[error("invalid shape {shape:?}: {reason}")]
    Shape {
        /// The shape found.
        shape: Vec<u32>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The body's length does not match the shape.
    #[error("{encoding} body has {found} {unit}, shape {shape:?} needs {expected}")]
    BodyLength {
        /// Encoding of the body.
        encoding: &'static str,
        /// The shape.
        shape: Vec<u32>,
        /// Length found.
        found: usize,
        /// Length the shape needs.
        expected: usize,
        /// Unit of the lengths ("words", "values").
        unit: &'static str,
    },
    /// A sparse index is out of range or the indices are not strictly increasing.
    #[error("sparse index {index} at position {position} is invalid: {reason} (tensor has {len} elements)")]
    SparseIndex {
        /// The offending index.
        index: u32,
        /// Its position in the index list.
        position: usize,
        /// Number of elements of the tensor.
        len: usize,
        /// "out of range" or "not strictly increasing".
        reason: &'static str,
    },
    /// A bitset has bits set beyond the tensor's last element.
    #[error("bitset has bits set beyond element {len}")]
    BitsetPadding {
        /// Number of elements of the tensor.
        len: usize,
    },
    /// A protobuf message could not be decoded.
    #[error("cannot decode {type_name}: {reason}")]
    Decode {
        /// Protobuf type that was expected.
        type_name: &'static str,
        /// What prost reported.
        reason: String,
    },
}
