use super::*;
use proptest::prelude::*;

fn sample(body: SpikeBody, shape: Vec<u32>) -> SpikeTensor {
    SpikeTensor {
        header: SpikeHeader {
            wire_version: WIRE_VERSION,
            source: "layer".into(),
            seq: 3,
            step: 11,
            timestamp_ns: 99,
        },
        shape,
        body,
    }
}

#[test]
fn round_trips_every_encoding_in_place() {
    let tensors = [
        sample(SpikeBody::Bitset(vec![0b1010, 1 << 63]), vec![128]),
        sample(SpikeBody::Sparse(vec![1, 3, 127]), vec![2, 64]),
        sample(SpikeBody::Analog(vec![0.0, 0.5, -1.0]), vec![3]),
    ];
    for tensor in tensors {
        let bytes = tensor.to_aligned_bytes();
        assert_eq!(bytes.len(), tensor.serialized_len());
        let view = SpikeTensor::view(&bytes).unwrap();
        assert_eq!(view.to_owned_tensor(), tensor);
        assert_eq!(view.active_count(), tensor.active_count());
        assert_eq!(
            view.active_indices().collect::<Vec<_>>(),
            tensor.active_indices().collect::<Vec<_>>()
        );
    }
}

#[test]
fn view_borrows_the_buffer() {
    let tensor = sample(SpikeBody::Bitset(vec![7; 16]), vec![1024]);
    let bytes = tensor.to_aligned_bytes();
    let words = SpikeTensor::view(&bytes).unwrap().bitset().unwrap();
    let range = bytes.as_ptr_range();
    assert!(
        range.contains(&words.as_ptr().cast::<u8>()),
        "view must point into the received bytes"
    );
}

#[test]
fn conversions_agree_on_active_elements() {
    let sparse = SpikeTensor::builder("enc")
        .shape([200])
        .sparse(vec![0, 63, 64, 199])
        .unwrap();
    for encoding in [Encoding::Bitset, Encoding::Analog, Encoding::Sparse] {
        let converted = sparse.to_encoding(encoding);
        converted.validate().unwrap();
        assert_eq!(converted.encoding(), encoding);
        assert_eq!(
            converted.active_indices().collect::<Vec<_>>(),
            vec![0, 63, 64, 199]
        );
        assert_eq!(converted.to_encoding(Encoding::Sparse), sparse);
    }
}

#[test]
fn builder_rejects_bodies_that_do_not_fit_the_shape() {
    let err = SpikeTensor::builder("x")
        .shape([10])
        .sparse(vec![3, 10])
        .unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::SparseIndex {
                index: 10,
                reason: "out of range",
                ..
            }
        ),
        "{err}"
    );
    let err = SpikeTensor::builder("x")
        .shape([10])
        .sparse(vec![3, 3])
        .unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::SparseIndex {
                reason: "not strictly increasing",
                ..
            }
        ),
        "{err}"
    );
    let err = SpikeTensor::builder("x")
        .shape([65])
        .bitset(vec![0])
        .unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::BodyLength {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = SpikeTensor::builder("x")
        .shape([10])
        .bitset(vec![1 << 10])
        .unwrap_err();
    assert_eq!(err, SchemaError::BitsetPadding { len: 10 });
    let err = SpikeTensor::builder("x")
        .shape([4, 0])
        .analog(vec![])
        .unwrap_err();
    assert!(matches!(err, SchemaError::Shape { .. }), "{err}");
    let err = SpikeTensor::builder("x")
        .shape([u32::MAX, u32::MAX, 2])
        .analog(vec![])
        .unwrap_err();
    assert!(matches!(err, SchemaError::Shape { .. }), "{err}");
}

#[test]
fn from_active_packs_bits() {
    let mut active = vec![false; 130];
    active[1] = true;
    active[129] = true;
    let tensor = SpikeTensor::builder("x").from_active(&active).unwrap();
    assert_eq!(tensor.shape, vec![130]);
    assert_eq!(tensor.active_indices().collect::<Vec<_>>(), vec![1, 129]);
}

#[test]
fn wrong_wire_version_is_rejected() {
    let mut tensor = sample(SpikeBody::Sparse(vec![1]), vec![4]);
    tensor.header.wire_version = WIRE_VERSION + 1;
    let bytes = tensor.to_aligned_bytes();
    assert_eq!(
        SpikeTensor::view(&bytes).unwrap_err(),
        SchemaError::WireVersion {
            found: WIRE_VERSION + 1,
            supported: WIRE_VERSION
        }
    );
}

#[test]
fn misaligned_buffer_is_rejected() {
    let tensor = sample(SpikeBody::Sparse(vec![1]), vec![4]);
    let bytes = tensor.to_aligned_bytes();
    let mut shifted = AlignedVec::<ALIGNMENT>::new();
    shifted.push(0);
    shifted.extend_from_slice(&bytes);
    let err = SpikeTensor::view(&shifted[1..]).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::Misaligned {
                required: ALIGNMENT,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn write_into_reports_a_small_buffer() {
    let tensor = sample(SpikeBody::Analog(vec![1.0; 100]), vec![100]);
    let mut small = [0u8; 64];
    let err = tensor.write_into(&mut small).unwrap_err();
    assert_eq!(
        err,
        BufferTooSmall {
            needed: tensor.serialized_len(),
            capacity: 64
        }
    );
}

fn aligned(bytes: &[u8]) -> AlignedVec<ALIGNMENT> {
    let mut buf = AlignedVec::<ALIGNMENT>::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    buf
}

fn arb_tensor() -> impl Strategy<Value = SpikeTensor> {
    (1u32..300, any::<u64>(), "[a-z]{0,12}").prop_flat_map(|(len, step, source)| {
        let body = prop_oneof![
            proptest::collection::vec(any::<bool>(), len as usize)
                .prop_map(|bits| SpikeTensor::builder("").from_active(&bits).unwrap().body),
            proptest::collection::btree_set(0..len, 0..(len as usize).min(40))
                .prop_map(|set| SpikeBody::Sparse(set.into_iter().collect())),
            proptest::collection::vec(-2.0f32..2.0, len as usize).prop_map(SpikeBody::Analog),
        ];
        body.prop_map(move |body| {
            let mut tensor = sample(body, vec![len]);
            tensor.header.step = step;
            tensor.header.source = source.clone();
            tensor
        })
    })
}

proptest! {
    #[test]
    fn valid_tensors_round_trip(tensor in arb_tensor()) {
        let bytes = tensor.to_aligned_bytes();
        let view = SpikeTensor::view(&bytes).unwrap();
        prop_assert_eq!(view.to_owned_tensor(), tensor);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SpikeTensor::view(&aligned(&bytes));
    }

    #[test]
    fn truncated_archives_are_errors(tensor in arb_tensor(), cut in 1usize..64) {
        let bytes = tensor.to_aligned_bytes();
        let keep = bytes.len().saturating_sub(cut);
        prop_assert!(SpikeTensor::view(&aligned(&bytes[..keep])).is_err());
    }

    #[test]
    fn corrupted_archives_never_panic(tensor in arb_tensor(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = tensor.to_aligned_bytes();
        let len = bytes.len();
        for (pos, value) in flips {
            bytes[pos % len] ^= value;
        }
        if let Ok(view) = SpikeTensor::view(&bytes) {
            // Whatever survives validation must be internally consistent.
            prop_assert!(view.active_indices().all(|i| (i as usize) < view.len()));
        }
    }
}
