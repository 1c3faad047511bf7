//! Stimulus sources for encoder nodes: labelled samples with values in [0, 1].
//!
//! - `builtin:digits`: 200 real 8×8 handwritten digits compiled into the binary.
//! - `generator:bars`: synthetic 8×8 images of one bar each (10 classes: 8
//!   positions of vertical bars, plus two diagonals), seeded.
//! - a path ending in `.csv` or `.csv.gz`: rows of pixel values followed by a label,
//!   like `shared/data/digits/digits.csv.gz`; values are scaled by the row set's maximum.
//! - an IDX image file, as MNIST is distributed (`train-images-idx3-ubyte[.gz]`),
//!   with labels from the sibling `…labels-idx1-ubyte[.gz]` file when present.

use std::io::Read;
use std::path::Path;

/// The built-in stimulus sources (besides files).
pub const BUILTIN_SOURCES: &[&str] = &["builtin:digits", "generator:bars"];

const BUILTIN_DIGITS: &str = include_str!("../data/digits-200.csv");

/// One input pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Values in [0, 1].
    pub values: Vec<f32>,
    /// Class label, when the source has one.
    pub label: Option<u32>,
}

/// A stimulus file could not be read or is not what its name says.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StimulusError {
    /// The file cannot be read.
    #[error("cannot read stimulus {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is not a valid stimulus (`path` may end in `:LINE`).
    #[error("stimulus {path}: {reason}")]
    Invalid {
        /// The file, or `file:line`.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Loads the samples named by `source` (see the module docs).
pub fn load(source: &str, seed: u64) -> Result<Vec<Sample>, StimulusError> {
    match source {
        "builtin:digits" => parse_csv("builtin:digits", BUILTIN_DIGITS),
        "generator:bars" => Ok(bars(200, seed)),
        path if path.ends_with(".csv") || path.ends_with(".csv.gz") => {
            parse_csv(path, &read_text(Path::new(path))?)
        }
        path => load_idx(Path::new(path)),
    }
}

fn io_error(path: &Path, reason: impl std::fmt::Display) -> StimulusError {
    StimulusError::Invalid {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, StimulusError> {
    let raw = std::fs::read(path).map_err(|source| StimulusError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|err| io_error(path, format!("not a valid gzip file: {err}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn read_text(path: &Path) -> Result<String, StimulusError> {
    String::from_utf8(read_bytes(path)?).map_err(|_| io_error(path, "not UTF-8 text"))
}

/// Rows of numbers; the last column is the label.
fn parse_csv(name: &str, text: &str) -> Result<Vec<Sample>, StimulusError> {
    let error = |line: usize, reason: String| StimulusError::Invalid {
        path: format!("{name}:{line}"),
        reason,
    };
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Result<Vec<f32>, _> =
            line.split(',').map(|f| f.trim().parse::<f32>()).collect();
        let mut fields = fields.map_err(|err| error(index + 1, format!("not a number: {err}")))?;
        let label = fields.pop().filter(|l| *l >= 0.0 && l.fract() == 0.0);
        let label = label
            .ok_or_else(|| error(index + 1, "last column must be a label (0, 1, 2, …)".into()))?;
        if fields.is_empty() || fields.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(error(
                index + 1,
                "pixel values must be finite and non-negative".into(),
            ));
        }
        if let Some((first, _)) = rows.first() {
            if first.len() != fields.len() {
                return Err(error(
                    index + 1,
                    format!("{} values, the first row has {}", fields.len(), first.len()),
                ));
            }
        }
        rows.push((fields, label as u32));
    }
    if rows.is_empty() {
        return Err(error(0, "no rows".into()));
    }
    let max = rows
        .iter()
        .flat_map(|(v, _)| v.iter().copied())
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    Ok(rows
        .into_iter()
        .map(|(values, label)| Sample {
            values: values.into_iter().map(|v| v / max).collect(),
            label: Some(label),
        })
        .collect())
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// An IDX file: magic 0x0000_08NN (unsigned bytes, NN dimensions), sizes, data.
fn parse_idx(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), StimulusError> {
    let magic = be_u32(bytes, 0).ok_or_else(|| io_error(path, "too short for an IDX header"))?;
    if magic >> 8 != 0x08 {
        return Err(io_error(
            path,
            format!("not an unsigned-byte IDX file (magic {magic:#010x})"),
        ));
    }
    let dims = (magic & 0xff) as usize;
    let sizes: Option<Vec<usize>> = (0..dims)
        .map(|d| be_u32(bytes, 4 + 4 * d).map(|s| s as usize))
        .collect();
    let sizes = sizes.ok_or_else(|| io_error(path, "truncated IDX header"))?;
    let count = sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
    let data = &bytes[(4 + 4 * dims).min(bytes.len())..];
    match count {
        Some(count) if count == data.len() => Ok((sizes, data.to_vec())),
        _ => Err(io_error(
            path,
            format!(
                "IDX sizes {sizes:?} do not match its {} data bytes",
                data.len()
            ),
        )),
    }
}

fn load_idx(path: &Path) -> Result<Vec<Sample>, StimulusError> {
    let (sizes, pixels) = parse_idx(path, &read_bytes(path)?)?;
    let (&count, rest) = sizes
        .split_first()
        .ok_or_else(|| io_error(path, "IDX image file without dimensions"))?;
    let size: usize = rest.iter().product();
    let labels_path = path.to_string_lossy().replace("images-idx3", "labels-idx1");
    let labels = match Path::new(&labels_path) {
        p if p != path && p.exists() => {
            let (label_sizes, labels) = parse_idx(p, &read_bytes(p)?)?;
            if label_sizes != [count] {
                return Err(io_error(
                    p,
                    format!(
                        "{} labels for {count} images",
                        label_sizes.first().unwrap_or(&0)
                    ),
                ));
            }
            Some(labels)
        }
        _ => None,
    };
    Ok((0..count)
        .map(|i| Sample {
            values: pixels[i * size..(i + 1) * size]
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            label: labels.as_ref().map(|l| u32::from(l[i])),
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
        let samples = load("builtin:digits", 0).unwrap();
        assert_eq!(samples.len(), 200);
        assert!(samples
            .iter()
            .all(|s| s.values.len() == 64 && s.values.iter().all(|v| (0.0..=1.0).contains(v))));
        assert_eq!(samples[0].label, Some(0));
        assert_eq!(samples[1].label, Some(1));
    }

    #[test]
    fn shared_digits_file_loads_when_present() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/digits/digits.csv.gz"
        );
        if Path::new(path).exists() {
            let samples = load(path, 0).unwrap();
            assert_eq!(samples.len(), 1797);
        }
    }

    #[test]
    fn bad_csv_names_the_line() {
        let err = parse_csv("x.csv", "1,2,3\n1,2\n").unwrap_err();
        assert!(err.to_string().contains("x.csv:2"), "{err}");
        let err = parse_csv("x.csv", "1,oops,3\n").unwrap_err();
        assert!(err.to_string().contains("x.csv:1"), "{err}");
    }

    #[test]
    fn idx_round_trip_and_truncation() {
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        bytes.extend([0, 255, 128, 0, 1, 2, 3, 4]);
        let (sizes, data) = parse_idx(Path::new("t"), &bytes).unwrap();
        assert_eq!(sizes, vec![2, 2, 2]);
        assert_eq!(data.len(), 8);
        assert!(parse_idx(Path::new("t"), &bytes[..bytes.len() - 1]).is_err());
        assert!(parse_idx(Path::new("t"), &[1, 2]).is_err());
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
