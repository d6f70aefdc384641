//! Bounded membership structures for "seen before" questions.

/// An exact set of at most `N` hashes. Once full it is saturated: everything counts as known,
/// because an agent that uses more than `N` distinct values has no meaningful "first use".
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmallSet<const N: usize> {
    items: [u64; N],
    len: usize,
    saturated: bool,
}

impl<const N: usize> Default for SmallSet<N> {
    fn default() -> Self {
        Self {
            items: [0; N],
            len: 0,
            saturated: false,
        }
    }
}

impl<const N: usize> SmallSet<N> {
    pub(crate) fn contains(&self, h: u64) -> bool {
        self.items[..self.len].contains(&h)
    }

    pub(crate) fn is_novel(&self, h: u64) -> bool {
        !self.saturated && !self.contains(h)
    }

    pub(crate) fn insert(&mut self, h: u64) {
        if self.contains(h) {
            return;
        }
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = h;
                self.len += 1;
            }
            None => self.saturated = true,
        }
    }
}

const BLOOM_HASHES: u32 = 3;

/// A Bloom filter of `WORDS` 64-bit words with three probes (4096 bits by default). It never
/// forgets a value it was given; as it fills, unknown values are more often mistaken for known
/// ones, which only costs sensitivity, never a false alarm. With 300 shapes in 4096 bits the miss
/// rate is about 1%.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bloom<const WORDS: usize = 64> {
    words: [u64; WORDS],
}

impl<const WORDS: usize> Default for Bloom<WORDS> {
    fn default() -> Self {
        Self { words: [0; WORDS] }
    }
}

impl<const WORDS: usize> Bloom<WORDS> {
    const BITS: u32 = (WORDS * 64) as u32;

    fn probes(h: u64) -> impl Iterator<Item = (usize, u64)> {
        // Double hashing (Kirsch-Mitzenmacher): two halves of one well-mixed hash.
        let h1 = h as u32;
        let h2 = ((h >> 32) as u32) | 1;
        (0..BLOOM_HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % Self::BITS;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    pub(crate) fn contains(&self, h: u64) -> bool {
        Self::probes(h).all(|(w, m)| self.words.get(w).is_some_and(|word| word & m != 0))
    }

    pub(crate) fn insert(&mut self, h: u64) {
        for (w, m) in Self::probes(h) {
            if let Some(word) = self.words.get_mut(w) {
                *word |= m;
            }
        }
    }
}

/// The last few distinct hashes, so that "distinct new shapes" is not inflated by repeats.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recent {
    items: [u64; 8],
    next: usize,
}

impl Recent {
    /// Remembers `h`; returns whether it was not among the recent ones.
    pub(crate) fn remember(&mut self, h: u64) -> bool {
        if self.items.contains(&h) {
            return false;
        }
        let slot = self.next % self.items.len();
        self.items[slot] = h;
        self.next = slot + 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::shape::mix;

    #[test]
    fn small_set_saturates_to_known() {
        let mut s = SmallSet::<2>::default();
        assert!(s.is_novel(1));
        s.insert(1);
        s.insert(2);
        assert!(!s.is_novel(1));
        assert!(s.is_novel(3));
        s.insert(3);
        assert!(!s.is_novel(99), "a saturated set reports nothing as new");
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::<64>::default();
        for i in 0..300 {
            b.insert(mix(i));
        }
        assert!((0..300).all(|i| b.contains(mix(i))));
        let false_positives = (1000..11_000).filter(|&i| b.contains(mix(i))).count();
        assert!(false_positives < 300, "{false_positives} of 10000");
    }

    #[test]
    fn recent_counts_distinct() {
        let mut r = Recent::default();
        assert!(r.remember(5));
        assert!(!r.remember(5));
        for i in 10..18 {
            assert!(r.remember(i));
        }
        assert!(r.remember(5), "forgotten after eight others");
    }
}
