//! A small seeded random generator (SplitMix64): an Item's generated data depends only on its
//! seed, whatever the version of `rand`.

use super::ids::BASE62;

/// A deterministic stream of random numbers.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0); the modulo bias is far below anything a test could see.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below(high.abs_diff(low) + 1) as i64
    }

    /// `true` `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty), each as likely as its weight.
    pub fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: u64 = items.iter().map(|item| u64::from(weight(item))).sum();
        let mut roll = self.below(total.max(1));
        for item in items {
            let w = u64::from(weight(item));
            if roll < w {
                return item;
            }
            roll -= w;
        }
        &items[items.len() - 1]
    }

    /// Puts `items` in a random order.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A Plaid-shaped id: 37 base62 characters.
    pub fn id(&mut self) -> String {
        (0..super::ids::ID_LEN)
            .map(|_| BASE62[self.below(BASE62.len() as u64) as usize] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (Dice::new(7), Dice::new(7));
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Dice::new(7).id(), Dice::new(8).id());
    }

    #[test]
    fn ranges_hold() {
        let mut dice = Dice::new(1);
        for _ in 0..1000 {
            let n = dice.between(-5, 5);
            assert!((-5..=5).contains(&n));
        }
        let picked = dice.weighted(&[("never", 0), ("always", 3)], |item| item.1);
        assert_eq!(picked.0, "always");
    }
}
