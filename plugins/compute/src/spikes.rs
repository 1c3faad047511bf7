//! Spike bitsets: bit `i` of word `i / 64` is neuron `i`.
//!
//! Every layer, encoder and projection in evospike exchanges spikes in this form
//! ([`SpikeWords`]). A step of 4000 neurons is 63 words, clearing it is a `fill(0)`,
//! and walking the spiking neurons costs one `trailing_zeros` per spike — which is
//! what makes event-driven propagation cheap when few neurons fire.

pub use evospike_plugin_api::{spike_words_len, SpikeWords};

/// Sets bit `i`.
#[inline]
pub fn set(words: &mut SpikeWords, i: usize) {
    words[i / 64] |= 1u64 << (i % 64);
}

/// Whether bit `i` is set.
#[inline]
pub fn get(words: &SpikeWords, i: usize) -> bool {
    words[i / 64] >> (i % 64) & 1 == 1
}

/// Clears every bit.
#[inline]
pub fn clear(words: &mut SpikeWords) {
    words.fill(0);
}

/// Number of set bits (spikes).
#[inline]
pub fn count(words: &SpikeWords) -> usize {
    words.iter().map(|w| w.count_ones() as usize).sum()
}

/// Iterates the indices of the set bits in increasing order, without allocating.
#[inline]
pub fn ones(words: &SpikeWords) -> Ones<'_> {
    Ones {
        words,
        word_index: 0,
        current: words.first().copied().unwrap_or(0),
    }
}

/// Iterator over set bits, made by [`ones`].
#[derive(Clone, Debug)]
pub struct Ones<'a> {
    words: &'a SpikeWords,
    word_index: usize,
    current: u64,
}

impl Iterator for Ones<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.current == 0 {
            self.word_index += 1;
            self.current = *self.words.get(self.word_index)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        // Clear the lowest set bit.
        self.current &= self.current - 1;
        Some(self.word_index * 64 + bit)
    }
}

/// Writes the indices of the set bits below `limit` into `out` (cleared first).
///
/// `out` keeps its capacity, so with `out` preallocated to `limit` this never allocates.
pub fn collect_below(words: &SpikeWords, limit: usize, out: &mut Vec<u32>) {
    out.clear();
    for i in ones(words) {
        if i >= limit {
            break;
        }
        out.push(i as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_get_count_and_clear() {
        let mut w = vec![0u64; spike_words_len(130)];
        for i in [0, 63, 64, 129] {
            set(&mut w, i);
        }
        assert!(get(&w, 63) && get(&w, 64) && !get(&w, 65));
        assert_eq!(count(&w), 4);
        assert_eq!(ones(&w).collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        clear(&mut w);
        assert_eq!(count(&w), 0);
        assert_eq!(ones(&w).next(), None);
    }

    #[test]
    fn ones_of_empty_slice_is_empty() {
        assert_eq!(ones(&[]).count(), 0);
    }

    #[test]
    fn collect_below_stops_at_limit_and_reuses_the_buffer() {
        let mut w = vec![0u64; 2];
        for i in [1, 5, 70, 100] {
            set(&mut w, i);
        }
        let mut out = Vec::with_capacity(128);
        collect_below(&w, 71, &mut out);
        assert_eq!(out, vec![1, 5, 70]);
        assert_eq!(out.capacity(), 128);
    }

    proptest! {
        #[test]
        fn ones_lists_exactly_the_set_bits(bits in proptest::collection::btree_set(0usize..500, 0..60)) {
            let mut w = vec![0u64; spike_words_len(500)];
            for &b in &bits { set(&mut w, b); }
            prop_assert_eq!(ones(&w).collect::<Vec<_>>(), bits.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(count(&w), bits.len());
        }
    }
}
