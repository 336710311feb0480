//! Content-defined chunking (FastCDC with normalised chunking and a gear hash).
//!
//! A cut point depends only on the 64 bytes before it, so an insertion or overwrite
//! changes the chunks around it and no others. The gear table is derived from the
//! repository's secret chunker seed, so chunk boundaries (and therefore chunk sizes seen
//! in storage) do not fingerprint known files across repositories.
//!
//! The algorithm and parameters are part of the repository format (`docs/FORMAT.md`).

use serde::{Deserialize, Serialize};

/// Chunker parameters, chosen at `init` and stored in the repository config.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Name of the algorithm; only `fastcdc-gear64-v1` exists.
    pub algorithm: ChunkerAlgorithm,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// Seed of the gear table (secret: the config is encrypted).
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ChunkerAlgorithm {
    #[serde(rename = "fastcdc-gear64-v1")]
    FastCdcGear64V1,
}

/// Default sizes: 16 KiB / 64 KiB / 256 KiB. See `docs/FORMAT.md` for why: a 4 KiB
/// page write into a database file costs one ~64 KiB chunk here instead of the
/// ~1-2 MiB a restic- or borg-sized chunk costs, while per-chunk overhead (envelope,
/// pack header entry, index entry: 127 bytes) stays below 0.2%.
pub const DEFAULT_MIN: u32 = 16 * 1024;
pub const DEFAULT_AVG: u32 = 64 * 1024;
pub const DEFAULT_MAX: u32 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ChunkerError {
    #[error(
        "invalid chunk sizes min={min} avg={avg} max={max}: need 64 B <= min < avg < max <= 64 MiB with avg a power of two"
    )]
    InvalidSizes { min: u32, avg: u32, max: u32 },
}

impl ChunkerParams {
    pub fn new(min: u32, avg: u32, max: u32, seed: u64) -> Result<Self, ChunkerError> {
        let ok = (64..avg).contains(&min)
            && avg < max
            && max <= 64 * 1024 * 1024
            && avg.is_power_of_two();
        if !ok {
            return Err(ChunkerError::InvalidSizes { min, avg, max });
        }
        Ok(ChunkerParams {
            algorithm: ChunkerAlgorithm::FastCdcGear64V1,
            min_size: min,
            avg_size: avg,
            max_size: max,
            seed,
        })
    }
}

/// A chunker ready to find cut points.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    min: usize,
    avg: usize,
    max: usize,
    /// Harder mask used before the average size is reached (normalisation level 2).
    mask_small: u64,
    /// Easier mask used after it.
    mask_large: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("min", &self.min)
            .field("avg", &self.avg)
            .field("max", &self.max)
            .finish()
    }
}

/// SplitMix64: the generator for the gear table (specified in FORMAT.md).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A mask of `bits` ones in the top bits of a u64: with a left-shifting gear hash the
/// top bit depends on the last 64 bytes, which is the window.
fn top_mask(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        !0u64 << (64 - bits.min(64))
    }
}

impl Chunker {
    pub fn new(p: &ChunkerParams) -> Self {
        let mut gear = Box::new([0u64; 256]);
        let mut state = p.seed;
        for g in gear.iter_mut() {
            *g = splitmix64(&mut state);
        }
        let bits = p.avg_size.trailing_zeros();
        Chunker {
            gear,
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            mask_small: top_mask(bits + 2),
            mask_large: top_mask(bits.saturating_sub(2)),
        }
    }

    pub fn max_size(&self) -> usize {
        self.max
    }

    /// The length of the next chunk at the start of `data`. When `data` is shorter than
    /// the maximum chunk size and more data may follow, the caller must not trust a cut
    /// at `data.len()`: see [`Chunker::split`].
    pub fn cut(&self, data: &[u8]) -> usize {
        let n = data.len();
        if n <= self.min {
            return n;
        }
        let end = n.min(self.max);
        let normal = end.min(self.avg);
        let mut h: u64 = 0;
        let mut i = self.min;
        while i < normal {
            h = (h << 1).wrapping_add(self.gear[data[i] as usize]);
            if h & self.mask_small == 0 {
                return i + 1;
            }
            i += 1;
        }
        while i < end {
            h = (h << 1).wrapping_add(self.gear[data[i] as usize]);
            if h & self.mask_large == 0 {
                return i + 1;
            }
            i += 1;
        }
        end
    }

    /// Splits `data` into chunk lengths. With `eof == false`, stops before the last
    /// partial stretch shorter than the maximum chunk size (its cut may depend on bytes
    /// not read yet) and returns how many bytes were consumed.
    pub fn split(&self, data: &[u8], eof: bool, out: &mut Vec<usize>) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            if !eof && rest.len() < self.max {
                break;
            }
            let len = self.cut(rest);
            out.push(len);
            pos += len;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams::new(DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX, 42).unwrap()
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n).map(|_| splitmix64(&mut s) as u8).collect()
    }

    #[test]
    fn chunks_cover_input_and_respect_bounds() {
        let c = Chunker::new(&params());
        let data = pseudo_random(8 << 20, 1);
        let mut lens = Vec::new();
        let used = c.split(&data, true, &mut lens);
        assert_eq!(used, data.len());
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        for l in &lens[..lens.len() - 1] {
            assert!(
                *l > DEFAULT_MIN as usize && *l <= DEFAULT_MAX as usize,
                "{l}"
            );
        }
        let avg = data.len() / lens.len();
        assert!((40_000..110_000).contains(&avg), "average chunk {avg}");
    }

    #[test]
    fn an_overwrite_changes_few_chunks() {
        let c = Chunker::new(&params());
        let a = pseudo_random(4 << 20, 2);
        let mut b = a.clone();
        b[2_000_000..2_004_096].fill(0xAB);
        let chunks = |d: &[u8]| {
            let mut lens = Vec::new();
            c.split(d, true, &mut lens);
            let mut out = std::collections::HashSet::new();
            let mut p = 0;
            for l in lens {
                out.insert(d[p..p + l].to_vec());
                p += l;
            }
            out
        };
        let (ca, cb) = (chunks(&a), chunks(&b));
        let new: usize = cb.difference(&ca).map(|c| c.len()).sum();
        assert!(
            new < 3 * DEFAULT_MAX as usize,
            "{new} new bytes for a 4 KiB write"
        );
    }

    #[test]
    fn the_seed_changes_boundaries() {
        let data = pseudo_random(2 << 20, 3);
        let mut a = Vec::new();
        let mut b = Vec::new();
        Chunker::new(&params()).split(&data, true, &mut a);
        let mut p2 = params();
        p2.seed = 43;
        Chunker::new(&p2).split(&data, true, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn streaming_split_matches_whole_split() {
        let c = Chunker::new(&params());
        let data = pseudo_random(3 << 20, 4);
        let mut whole = Vec::new();
        c.split(&data, true, &mut whole);
        let mut streamed = Vec::new();
        let mut start = 0;
        let mut window_end = 700_000;
        loop {
            let eof = window_end >= data.len();
            let end = window_end.min(data.len());
            let used = c.split(&data[start..end], eof, &mut streamed);
            start += used;
            if eof {
                break;
            }
            window_end += 700_000;
        }
        assert_eq!(whole, streamed);
    }

    #[test]
    fn invalid_sizes_are_refused() {
        assert!(ChunkerParams::new(1024, 3000, 8192, 0).is_err());
        assert!(ChunkerParams::new(8192, 4096, 16384, 0).is_err());
    }
}
