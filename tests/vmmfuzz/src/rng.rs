//! A small deterministic generator (SplitMix64): the same seed gives the
//! same sequence of calls on every run, so a seed that found something can be
//! replayed. Not for cryptography.

/// A seeded pseudo-random sequence.
pub struct Rng(u64);

impl Rng {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.u64() as u8;
        }
    }

    /// A value from the edges where checks go wrong (zero, one, powers of
    /// two and their neighbours, the top of 32 and 64 bits, guest RAM's base,
    /// page boundaries), or now and then any value.
    pub fn edgy(&mut self) -> u64 {
        const EDGES: &[u64] = &[
            0,
            1,
            2,
            3,
            4,
            7,
            8,
            31,
            32,
            33,
            63,
            64,
            255,
            256,
            0xfff,
            0x1000,
            0x1001,
            0x1fffff,
            0x20_0000,
            0x0800_0000,
            0x0900_0000,
            0x0a00_0000,
            0x3fff_f000,
            0x4000_0000,
            0x4000_1000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_f000,
            0xffff_ffff,
            0x1_0000_0000,
            1 << 40,
            (1 << 44) - 0x1000,
            1 << 44,
            1 << 48,
            (1 << 52) - 1,
            1 << 63,
            u64::MAX - 0x1000,
            u64::MAX - 1,
            u64::MAX,
        ];
        match self.below(4) {
            0 => self.u64(),
            1 => self.pick(EDGES).wrapping_add(self.below(3)).wrapping_sub(1),
            _ => *self.pick(EDGES),
        }
    }

    /// A seed for another thread's sequence, derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<u64> = (0..100).map(|_| a.u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).u64(), xs[0]);
    }

    #[test]
    fn below_and_edges_stay_in_range() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let _ = r.edgy();
        }
    }
}
