//! Costs of the data path's two ends, per payload size: writing a SpikeTensor's
//! archive into a buffer (what a publisher does) and validating a received one
//! (what a subscriber does). `cargo bench -p evospike-schemas --bench spike`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use evospike_schemas::{SpikeBody, SpikeTensor};
use std::hint::black_box;

fn tensor(bytes: usize) -> SpikeTensor {
    let words = (bytes / 8).max(1);
    let mut tensor = SpikeTensor::zeros("bench", &[(words * 64) as u32]).unwrap();
    if let SpikeBody::Bitset(w) = &mut tensor.body {
        w.iter_mut().enumerate().for_each(|(i, w)| *w = i as u64);
    }
    tensor
}

fn data_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("spike_tensor");
    for bytes in [64usize, 64 << 10, 1 << 20] {
        let tensor = tensor(bytes);
        let archive = tensor.to_aligned_bytes();
        let mut buf = archive.clone();
        group.throughput(Throughput::Bytes(archive.len() as u64));
        group.bench_with_input(BenchmarkId::new("write_into", bytes), &tensor, |b, t| {
            b.iter(|| t.write_into(black_box(&mut buf)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("view", bytes), &archive, |b, a| {
            b.iter(|| SpikeTensor::view(black_box(a)).unwrap().len())
        });
        group.bench_with_input(BenchmarkId::new("memcpy", bytes), &archive, |b, a| {
            let mut dst = vec![0u8; a.len()];
            b.iter(|| dst.copy_from_slice(black_box(a)))
        });
    }
    group.finish();
}

criterion_group!(benches, data_path);
criterion_main!(benches);
