//! Stimulus sources for encoder nodes: labelled samples with values in [0, 1].
//!
//! - `builtin:digits`: the 1,797 real 8×8 handwritten digits compiled into the
//!   binary (UCI, CC BY 4.0; see `plugins/learning/data/README.md`).
//! - `generator:bars`: synthetic 8×8 images of one bar each (10 classes: 8
//!   positions of vertical bars, plus two diagonals), seeded.
//! - a path ending in `.csv` or `.csv.gz`: rows of pixel values followed by a label,
//!   like `shared/data/digits/digits.csv.gz`; values are scaled by the file's maximum.
//! - an IDX image file, as MNIST is distributed (`train-images-idx3-ubyte[.gz]`),
//!   with labels from the sibling `…labels-idx1-ubyte[.gz]` file when present.
//!
//! Files are read by [`evospike_learning::data`], the loader `evospike train` uses,
//! so a pipeline presents a model exactly the numbers it was trained and evaluated
//! on. With a `holdout` fraction only the held-out samples are presented, split as
//! `evospike train --holdout` splits them.

use std::path::Path;

use evospike_learning::data::{self, Data, DataError};

/// The built-in stimulus sources (besides files).
pub const BUILTIN_SOURCES: &[&str] = &[data::BUILTIN_DIGITS, GENERATED_BARS];

const GENERATED_BARS: &str = "generator:bars";

/// One input pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Values in [0, 1].
    pub values: Vec<f32>,
    /// Class label, when the source has one.
    pub label: Option<u32>,
}

/// A stimulus or training data set could not be read or split.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StimulusError {
    /// The file could not be read, or is not what its name says.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The source cannot be presented as asked (e.g. a holdout of generated bars).
    #[error("{source_name}: {reason}")]
    Invalid {
        /// The source as written.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The data set of a file source (or `builtin:digits`).
pub fn load_data(source: &str) -> Result<Data, StimulusError> {
    Ok(data::load(Path::new(source), None)?)
}

/// `(kept, held_out)`: `data` split as `evospike train --holdout fraction` splits it.
pub fn split(source: &str, data: &Data, fraction: f64) -> Result<(Data, Data), StimulusError> {
    data.holdout(fraction)
        .map_err(|reason| StimulusError::Invalid {
            source_name: source.to_owned(),
            reason,
        })
}

/// Loads the samples named by `source` (see the module docs); with `holdout`,
/// only the held-out fraction.
pub fn load(source: &str, seed: u64, holdout: Option<f64>) -> Result<Vec<Sample>, StimulusError> {
    if source == GENERATED_BARS {
        if holdout.is_some() {
            return Err(StimulusError::Invalid {
                source_name: source.to_owned(),
                reason: "holdout applies to data files, not to generated bars".into(),
            });
        }
        return Ok(bars(200, seed));
    }
    let mut set = load_data(source)?;
    if let Some(fraction) = holdout {
        set = split(source, &set, fraction)?.1;
    }
    Ok((0..set.len())
        .map(|i| Sample {
            values: set.sample(i).to_vec(),
            label: set.labels().map(|l| l[i]),
        })
        .collect())
}

/// Synthetic bars: class c < 8 is a vertical bar in column c, 8 and 9 the diagonals,
/// with a little seeded noise.
fn bars(count: usize, seed: u64) -> Vec<Sample> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        // xorshift64*: small, seeded, good enough for pixel noise.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..count)
        .map(|i| {
            let class = (i % 10) as u32;
            let values = (0..64)
                .map(|p| {
                    let (row, col) = (p / 8, p % 8);
                    let on = match class {
                        c @ 0..=7 => col == c as usize,
                        8 => row == col,
                        _ => row + col == 7,
                    };
                    let base = if on { 0.9 } else { 0.0 };
                    (base + 0.1 * noise()).min(1.0)
                })
                .collect();
            Sample {
                values,
                label: Some(class),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_digits_are_real_8x8_digits() {
        let samples = load("builtin:digits", 0, None).unwrap();
        assert_eq!(samples.len(), 1797);
        assert!(samples
            .iter()
            .all(|s| s.values.len() == 64 && s.values.iter().all(|v| (0.0..=1.0).contains(v))));
        assert_eq!(samples[0].label, Some(0));
        assert_eq!(samples[1].label, Some(1));
        let held_out = load("builtin:digits", 0, Some(0.2)).unwrap();
        assert_eq!(held_out.len(), 359);
        assert_eq!(held_out[0], samples[4]);
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "1,2,3\n1,2\n").unwrap();
        let err = load(path.to_str().unwrap(), 0, None).unwrap_err();
        assert!(err.to_string().contains("x.csv:2"), "{err}");
        assert!(load("/nonexistent/images-idx3-ubyte", 0, None).is_err());
        assert!(load("generator:bars", 0, Some(0.2)).is_err());
    }

    #[test]
    fn bars_are_seeded_and_labelled() {
        assert_eq!(bars(20, 7), bars(20, 7));
        assert_ne!(bars(20, 7), bars(20, 8));
        let sample = &bars(10, 1)[3];
        assert_eq!(sample.label, Some(3));
        assert!(sample.values[3] > 0.8 && sample.values[4] < 0.2);
    }
}
