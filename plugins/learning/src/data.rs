//! Data sets from files: CSV (label in the last column) and IDX as MNIST is
//! distributed, gzipped or not.
//!
//! Values are scaled into \[0, 1\]: IDX bytes by 1/255, CSV values by the largest
//! value in the file (the 8×8 digits hold 0–16). The same rules are the encoder
//! node's, so a model sees the same numbers in training and in a pipeline.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.csv");
//! std::fs::write(&path, "0,2,4,1\n4,0,0,0\n")?;
//! let data = evospike_learning::data::load(&path, None)?;
//! assert_eq!(data.len(), 2);
//! assert_eq!(data.sample(0), [0.0, 0.5, 1.0]);
//! assert_eq!(data.labels(), Some(&[1, 0][..]));
//! # Ok(()) }
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use evospike_plugin_api::Dataset;
use sha2::{Digest, Sha256};

/// A data set file that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is not a data set of the kind its name says.
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        /// The file.
        path: PathBuf,
        /// The 1-based line (CSV), if the problem has one.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

/// Samples in memory, scaled into \[0, 1\], with their labels when the source has them.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    inputs: Vec<f32>,
    num_inputs: usize,
    shape: Vec<usize>,
    labels: Option<Vec<u32>>,
    digest: String,
}

impl Data {
    /// Builds a data set from values already scaled; `shape` multiplies to the
    /// sample length. Used for generated data and tests.
    pub fn from_parts(
        inputs: Vec<f32>,
        shape: Vec<usize>,
        labels: Option<Vec<u32>>,
    ) -> Result<Self, String> {
        let num_inputs: usize = shape.iter().product();
        if num_inputs == 0 || inputs.len() % num_inputs != 0 {
            return Err(format!(
                "{} values do not make samples of shape {shape:?}",
                inputs.len()
            ));
        }
        if let Some(l) = &labels {
            if l.len() != inputs.len() / num_inputs {
                return Err(format!(
                    "{} labels for {} samples",
                    l.len(),
                    inputs.len() / num_inputs
                ));
            }
        }
        let mut hasher = Sha256::new();
        for v in &inputs {
            hasher.update(v.to_le_bytes());
        }
        for l in labels.iter().flatten() {
            hasher.update(l.to_le_bytes());
        }
        Ok(Self {
            inputs,
            num_inputs,
            shape,
            labels,
            digest: hex(&hasher.finalize()),
        })
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.inputs.len() / self.num_inputs
    }

    /// `true` without samples.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Values per sample.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs
    }

    /// The shape of a sample (`[h, w]` for images).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.num_inputs..(i + 1) * self.num_inputs]
    }

    /// The labels, if any.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// Classes the labels span (largest label + 1; 0 without labels).
    pub fn num_classes(&self) -> usize {
        self.labels
            .iter()
            .flatten()
            .max()
            .map_or(0, |&m| m as usize + 1)
    }

    /// sha256 of the source files' bytes (hex), for provenance.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Splits off an evenly interleaved `fraction` of the samples as a held-out set:
    /// sample `i` is held out when `⌊(i+1)·f⌋ > ⌊i·f⌋` (for 0.2, every fifth sample,
    /// `i = 4, 9, 14, …`). Deterministic and spread over the whole file, so a file
    /// sorted or drifting in style splits fairly. Returns `(kept, held_out)`.
    pub fn holdout(&self, fraction: f64) -> Result<(Self, Self), String> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(format!(
                "the held-out fraction must be in (0, 1), got {fraction}"
            ));
        }
        let held = |i: usize| ((i + 1) as f64 * fraction).floor() > (i as f64 * fraction).floor();
        let (test, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| held(i));
        if test.is_empty() || train.is_empty() {
            return Err(format!(
                "holding out {fraction} of {} samples leaves one side empty",
                self.len()
            ));
        }
        let pick = |idx: &[usize], tag: &str| {
            let mut inputs = Vec::with_capacity(idx.len() * self.num_inputs);
            for &i in idx {
                inputs.extend_from_slice(self.sample(i));
            }
            Self {
                inputs,
                num_inputs: self.num_inputs,
                shape: self.shape.clone(),
                labels: self
                    .labels
                    .as_ref()
                    .map(|l| idx.iter().map(|&i| l[i]).collect()),
                digest: format!("{}/{tag}{fraction}", self.digest),
            }
        };
        Ok((pick(&train, "train"), pick(&test, "holdout")))
    }

    /// A borrowed view for learners, with `num_classes` classes.
    pub fn view(&self, num_classes: usize) -> Result<Dataset<'_>, String> {
        Dataset::new(
            &self.inputs,
            self.num_inputs,
            self.labels.as_deref(),
            num_classes,
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a byte string, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The name of the bundled data set.
pub const BUILTIN_DIGITS: &str = "builtin:digits";

/// The 1,797 UCI 8×8 handwritten digits compiled into the binary (gzipped CSV).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The bundled digits (see `data/README.md`): 1,797 labelled 8×8 images.
pub fn builtin_digits() -> Result<Data, DataError> {
    let path = Path::new(BUILTIN_DIGITS);
    let text = String::from_utf8(gunzip(path, DIGITS_CSV_GZ)?)
        .map_err(|_| format_error(path, None, "is not UTF-8 text".into()))?;
    parse_csv(path, &text, sha256_hex(DIGITS_CSV_GZ))
}

/// Loads `path`: `builtin:digits` (the bundled digits), a `.csv[.gz]` file (label in the last column) or an IDX image file
/// (`…-images-idx3-ubyte[.gz]`) with its labels from `labels` or, when not given,
/// the sibling `…-labels-idx1-ubyte[.gz]` file if there is one.
pub fn load(path: &Path, labels: Option<&Path>) -> Result<Data, DataError> {
    let name = path.to_string_lossy();
    if name == BUILTIN_DIGITS && labels.is_none() {
        return builtin_digits();
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        if let Some(l) = labels {
            return Err(format_error(
                l,
                None,
                "a CSV file carries its labels in its last column; drop --labels".into(),
            ));
        }
        let bytes = read(path)?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| format_error(path, None, "is not UTF-8 text".into()))?;
        return parse_csv(path, &text, sha256_hex(&bytes));
    }
    let images = read(path)?;
    let (dims, pixels) = parse_idx(path, &images, 0x08)?;
    let [count, rows @ ..] = &dims[..] else {
        return Err(format_error(
            path,
            None,
            "an IDX image file needs at least 2 dimensions".into(),
        ));
    };
    let mut hasher = Sha256::new();
    hasher.update(&images);
    let labels_path = labels
        .map(Path::to_path_buf)
        .or_else(|| sibling_labels(path));
    let labels = match &labels_path {
        Some(lp) => {
            let bytes = read(lp)?;
            hasher.update(&bytes);
            let (ldims, values) = parse_idx(lp, &bytes, 0x08)?;
            if ldims.len() != 1 || ldims[0] != *count {
                return Err(format_error(
                    lp,
                    None,
                    format!(
                        "holds {ldims:?} labels but {} has {count} images",
                        path.display()
                    ),
                ));
            }
            Some(values.iter().map(|&b| u32::from(b)).collect())
        }
        None => None,
    };
    let shape = if rows.is_empty() {
        vec![1]
    } else {
        rows.to_vec()
    };
    let num_inputs: usize = shape.iter().product();
    if num_inputs == 0 {
        return Err(format_error(path, None, "images have no pixels".into()));
    }
    Ok(Data {
        inputs: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        num_inputs,
        shape,
        labels,
        digest: hex(&hasher.finalize()),
    })
}

fn format_error(path: &Path, line: Option<usize>, reason: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

/// The file's bytes, gunzipped when they start with the gzip magic.
fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(path, &raw)
    } else {
        Ok(raw)
    }
}

/// `raw`, gunzipped.
fn gunzip(path: &Path, raw: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// `train-images-idx3-ubyte.gz` → `train-labels-idx1-ubyte.gz`, if it exists.
fn sibling_labels(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let labels = name
        .replace("images-idx3", "labels-idx1")
        .replace("images.idx3", "labels.idx1");
    if labels == name {
        return None;
    }
    let candidate = path.with_file_name(labels);
    candidate.exists().then_some(candidate)
}

/// An IDX file: two zero bytes, the type byte, the dimension count, big-endian
/// sizes, then the data. Only unsigned bytes (`type`) are read.
fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    ty: u8,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let bad = |reason: String| format_error(path, None, reason);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("is not an IDX file (no IDX magic number)".into()));
    }
    if bytes[2] != ty {
        return Err(bad(format!(
            "holds IDX type 0x{:02x}; only unsigned bytes (0x{ty:02x}) are supported",
            bytes[2]
        )));
    }
    let ndims = usize::from(bytes[3]);
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(format!(
            "is cut off inside its header of {ndims} dimensions"
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(bad(format!(
            "dimensions {dims:?} need {expected} bytes of data, the file has {}",
            data.len()
        )));
    }
    Ok((dims, data))
}

fn parse_csv(path: &Path, text: &str, digest: String) -> Result<Data, DataError> {
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |reason: String| format_error(path, Some(i + 1), reason);
        if fields.len() < 2 {
            return Err(bad("needs at least one value and a label".into()));
        }
        if *width.get_or_insert(fields.len()) != fields.len() {
            return Err(bad(format!(
                "has {} columns, earlier rows have {}",
                fields.len(),
                width.unwrap_or_default()
            )));
        }
        let (label, row) = fields.split_last().unwrap_or((&"", &[]));
        // A header row (non-numeric first line) is skipped.
        if values.is_empty() && labels.is_empty() && row[0].parse::<f32>().is_err() {
            width = None;
            continue;
        }
        for f in row {
            let v: f32 = f
                .parse()
                .map_err(|_| bad(format!("`{f}` is not a number")))?;
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("`{f}`: values must be finite and >= 0")));
            }
            values.push(v);
        }
        let label: u32 = label
            .parse()
            .or_else(|_| {
                label
                    .parse::<f64>()
                    .ok()
                    .filter(|l| l.fract() == 0.0 && *l >= 0.0)
                    .map(|l| l as u32)
                    .ok_or(())
            })
            .map_err(|()| bad(format!("label `{label}` is not a class number (0, 1, …)")))?;
        labels.push(label);
    }
    let Some(width) = width else {
        return Err(format_error(path, None, "holds no rows".into()));
    };
    let num_inputs = width - 1;
    let max = values.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        values.iter_mut().for_each(|v| *v /= max);
    }
    let side = (num_inputs as f64).sqrt().round() as usize;
    let shape = if side * side == num_inputs && side > 1 {
        vec![side, side]
    } else {
        vec![num_inputs]
    };
    Ok(Data {
        inputs: values,
        num_inputs,
        shape,
        labels: Some(labels),
        digest,
    })
}

/// Writes `data` as an IDX image file and an IDX label file (bytes: values ×255,
/// rounded), as MNIST is distributed. For making test data at any size.
pub fn write_idx(data: &Data, images: &Path, labels: &Path) -> std::io::Result<()> {
    let mut img = vec![0, 0, 0x08, data.shape.len() as u8 + 1];
    img.extend((data.len() as u32).to_be_bytes());
    for &d in &data.shape {
        img.extend((d as u32).to_be_bytes());
    }
    img.extend(
        data.inputs
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
    );
    std::fs::write(images, img)?;
    let mut lab = vec![0, 0, 0x08, 1];
    lab.extend((data.len() as u32).to_be_bytes());
    lab.extend(data.labels().unwrap_or_default().iter().map(|&l| l as u8));
    std::fs::write(labels, lab)
}

/// Each `h x w` image of `data` resized to `size x size` by bilinear interpolation
/// (for testing 28×28 paths with the 8×8 digits).
pub fn upsample(data: &Data, size: usize) -> Result<Data, String> {
    let [h, w] = data.shape[..] else {
        return Err(format!("samples of shape {:?} are not images", data.shape));
    };
    let mut out = Vec::with_capacity(data.len() * size * size);
    for i in 0..data.len() {
        let src = data.sample(i);
        for y in 0..size {
            let fy = ((y as f32 + 0.5) * h as f32 / size as f32 - 0.5).clamp(0.0, (h - 1) as f32);
            let (y0, ty) = (fy.floor() as usize, fy.fract());
            let y1 = (y0 + 1).min(h - 1);
            for x in 0..size {
                let fx =
                    ((x as f32 + 0.5) * w as f32 / size as f32 - 0.5).clamp(0.0, (w - 1) as f32);
                let (x0, tx) = (fx.floor() as usize, fx.fract());
                let x1 = (x0 + 1).min(w - 1);
                let top = src[y0 * w + x0] * (1.0 - tx) + src[y0 * w + x1] * tx;
                let bottom = src[y1 * w + x0] * (1.0 - tx) + src[y1 * w + x1] * tx;
                out.push(top * (1.0 - ty) + bottom * ty);
            }
        }
    }
    Data::from_parts(out, vec![size, size], data.labels.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trips_and_finds_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let data = Data::from_parts(
            vec![0.0, 1.0, 0.2, 0.4, 1.0, 0.0, 0.0, 0.6],
            vec![2, 2],
            Some(vec![3, 7]),
        )
        .unwrap();
        let (img, lab) = (
            dir.path().join("t-images-idx3-ubyte"),
            dir.path().join("t-labels-idx1-ubyte"),
        );
        write_idx(&data, &img, &lab).unwrap();
        let back = load(&img, None).unwrap();
        assert_eq!(back.shape(), [2, 2]);
        assert_eq!(back.labels(), Some(&[3, 7][..]));
        assert!((back.sample(0)[2] - 51.0 / 255.0).abs() < 1e-6);
        let gz = dir.path().join("g-images-idx3-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &std::fs::read(&img).unwrap()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let unlabelled = load(&gz, None).unwrap();
        assert_eq!(unlabelled.labels(), None);
        assert_eq!(load(&gz, Some(&lab)).unwrap().labels(), Some(&[3, 7][..]));
    }

    #[test]
    fn bad_files_are_errors_that_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("bad.csv");
        std::fs::write(&csv, "1,2,0\n1,x,1\n").unwrap();
        let err = load(&csv, None).unwrap_err().to_string();
        assert!(err.ends_with("bad.csv:2: `x` is not a number"), "{err}");
        std::fs::write(&csv, "1,2,0\n1,1\n").unwrap();
        assert!(load(&csv, None)
            .unwrap_err()
            .to_string()
            .contains(":2: has 2 columns"));
        let idx = dir.path().join("cut-images-idx3-ubyte");
        std::fs::write(
            &idx,
            [0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2],
        )
        .unwrap();
        let err = load(&idx, None).unwrap_err().to_string();
        assert!(
            err.contains("need 7056 bytes of data, the file has 2"),
            "{err}"
        );
        std::fs::write(&idx, b"hello").unwrap();
        assert!(load(&idx, None)
            .unwrap_err()
            .to_string()
            .contains("not an IDX file"));
        let missing = load(Path::new("/nonexistent/x.csv"), None).unwrap_err();
        assert!(matches!(missing, DataError::Io { .. }));
    }

    #[test]
    fn the_bundled_digits_are_all_there() {
        let d = load(Path::new(BUILTIN_DIGITS), None).unwrap();
        assert_eq!(
            (d.len(), d.shape(), d.num_classes()),
            (1797, &[8, 8][..], 10)
        );
        assert!(d.sample(0).iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn holdout_takes_every_fifth_sample() {
        let data = Data::from_parts(
            (0..10).map(|v| v as f32).collect(),
            vec![1],
            Some((0..10).collect()),
        )
        .unwrap();
        let (train, test) = data.holdout(0.2).unwrap();
        assert_eq!(test.labels(), Some(&[4, 9][..]));
        assert_eq!(train.len(), 8);
        assert!(data.holdout(1.0).is_err());
    }

    #[test]
    fn upsampling_keeps_the_image() {
        let data = Data::from_parts(vec![0.0, 1.0, 0.0, 1.0], vec![2, 2], Some(vec![0])).unwrap();
        let big = upsample(&data, 28).unwrap();
        assert_eq!(big.shape(), [28, 28]);
        let s = big.sample(0);
        assert_eq!(s[0], 0.0);
        assert_eq!(s[27], 1.0);
    }
}
