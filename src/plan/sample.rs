//! Statistics for a count from a sample: a uniform random sample of a stream of unknown
//! length (reservoir sampling) and the Wilson score interval of a proportion.

use rand::Rng;

/// The normal quantile of a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A uniform random sample of at most `capacity` items of a stream of unknown length
/// (Algorithm R): after `n` offers, each item offered is kept with probability
/// `min(1, capacity / n)`.
#[derive(Debug)]
pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            items: Vec::new(),
        }
    }

    pub fn offer<R: Rng + ?Sized>(&mut self, item: T, rng: &mut R) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
        } else {
            let slot = rng.random_range(0..self.seen);
            if let Ok(slot) = usize::try_from(slot)
                && slot < self.capacity
            {
                self.items[slot] = item;
            }
        }
    }

    /// How many items were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

/// The Wilson score interval of a proportion: `successes` of `trials`, at the normal
/// quantile `z`. `(0, 1)` when there are no trials.
pub fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn a_stream_shorter_than_the_reservoir_is_kept_whole() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut reservoir = Reservoir::new(10);
        for i in 0..6 {
            reservoir.offer(i, &mut rng);
        }
        assert_eq!(reservoir.seen(), 6);
        assert_eq!(reservoir.into_items(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_reservoir_keeps_each_item_with_equal_probability() {
        // 20 items, samples of 5: each item is kept in a quarter of 20,000 draws (5,000;
        // one standard deviation is about 61).
        let mut rng = StdRng::seed_from_u64(42);
        let mut kept = [0u32; 20];
        for _ in 0..20_000 {
            let mut reservoir = Reservoir::new(5);
            for i in 0..20usize {
                reservoir.offer(i, &mut rng);
            }
            assert_eq!(reservoir.seen(), 20);
            let items = reservoir.into_items();
            assert_eq!(items.len(), 5);
            let mut distinct = items.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 5, "{items:?}");
            for item in items {
                kept[item] += 1;
            }
        }
        for (item, count) in kept.iter().enumerate() {
            assert!((4_750..=5_250).contains(count), "item {item}: {count}");
        }
    }

    #[test]
    fn the_wilson_interval_matches_published_values() {
        let close = |(low, high): (f64, f64), (want_low, want_high): (f64, f64)| {
            assert!(
                (low - want_low).abs() < 5e-4 && (high - want_high).abs() < 5e-4,
                "{low} {high} vs {want_low} {want_high}"
            );
        };
        // Newcombe (1998), Statistics in Medicine 17, table I: 81/263, 15/148, 0/20, 1/29.
        close(wilson(81, 263, Z_95), (0.2553, 0.3662));
        close(wilson(15, 148, Z_95), (0.0624, 0.1605));
        close(wilson(0, 20, Z_95), (0.0, 0.1611));
        close(wilson(1, 29, Z_95), (0.0061, 0.1718));
        close(wilson(20, 20, Z_95), (0.8389, 1.0));
        assert_eq!(wilson(0, 0, Z_95), (0.0, 1.0));
    }
}
