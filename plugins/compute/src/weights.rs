//! Weight matrices between two layers: dense row-major and compressed sparse rows.
//!
//! Rows are presynaptic neurons and columns postsynaptic ones, so the weights a
//! spiking neuron `j` sends out are one contiguous row. Event-driven propagation
//! reads exactly the rows of the neurons that spiked.

use evospike_plugin_api::WeightsMut;

use crate::ShapeError;

/// Row-major dense weights.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseWeights {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl DenseWeights {
    /// Wraps `values` (row-major, `rows * cols` of them).
    pub fn new(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self, ShapeError> {
        let expected = rows.checked_mul(cols).ok_or(ShapeError::DenseLength {
            rows,
            cols,
            expected: usize::MAX,
            got: values.len(),
        })?;
        if values.len() != expected {
            return Err(ShapeError::DenseLength {
                rows,
                cols,
                expected,
                got: values.len(),
            });
        }
        check_finite(&values)?;
        Ok(Self { rows, cols, values })
    }

    /// A `rows x cols` matrix filled with `value`.
    pub fn filled(rows: usize, cols: usize, value: f32) -> Result<Self, ShapeError> {
        Self::new(rows, cols, vec![value; rows * cols])
    }

    /// Presynaptic neurons.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Postsynaptic neurons.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Row-major values, mutable (for plasticity).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// The outgoing weights of presynaptic neuron `row`.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.values[row * self.cols..(row + 1) * self.cols]
    }
}

/// Compressed sparse rows: row `r` holds columns `indices[indptr[r]..indptr[r + 1]]`
/// (strictly increasing) with weights `values[..]` at the same positions.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrWeights {
    rows: usize,
    cols: usize,
    indptr: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl CsrWeights {
    /// Validates and wraps CSR arrays.
    pub fn new(
        rows: usize,
        cols: usize,
        indptr: Vec<u32>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self, ShapeError> {
        let bad = |reason: String| ShapeError::Csr { rows, cols, reason };
        if indptr.len() != rows + 1 {
            return Err(bad(format!(
                "indptr has {} entries, expected rows + 1 = {}",
                indptr.len(),
                rows + 1
            )));
        }
        if indices.len() != values.len() {
            return Err(bad(format!(
                "{} indices but {} values",
                indices.len(),
                values.len()
            )));
        }
        if indptr[0] != 0 || indptr[rows] as usize != indices.len() {
            return Err(bad(format!(
                "indptr must start at 0 and end at nnz = {}, got {}..{}",
                indices.len(),
                indptr[0],
                indptr[rows]
            )));
        }
        for r in 0..rows {
            let (start, end) = (indptr[r] as usize, indptr[r + 1] as usize);
            if start > end {
                return Err(bad(format!("indptr decreases at row {r}")));
            }
            let row = &indices[start..end];
            if let Some(&c) = row.iter().find(|&&c| c as usize >= cols) {
                return Err(bad(format!("row {r} has column {c} out of range")));
            }
            if row.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad(format!("row {r} columns are not strictly increasing")));
            }
        }
        check_finite(&values)?;
        Ok(Self {
            rows,
            cols,
            indptr,
            indices,
            values,
        })
    }

    /// The sparse form of a dense matrix, keeping entries that are not exactly zero.
    pub fn from_dense(dense: &DenseWeights) -> Self {
        let mut indptr = Vec::with_capacity(dense.rows + 1);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        indptr.push(0);
        for r in 0..dense.rows {
            for (c, &v) in dense.row(r).iter().enumerate() {
                if v != 0.0 {
                    indices.push(c as u32);
                    values.push(v);
                }
            }
            indptr.push(indices.len() as u32);
        }
        Self {
            rows: dense.rows,
            cols: dense.cols,
            indptr,
            indices,
            values,
        }
    }

    /// Places these rows at `offset` inside a matrix of `total_rows` rows (the other
    /// rows empty): a projection from a sub-population, e.g. the inhibitory neurons
    /// `3200..4000` of a 4000-neuron layer, that still reads the whole layer's spikes.
    pub fn embed_rows(self, offset: usize, total_rows: usize) -> Result<Self, ShapeError> {
        if offset
            .checked_add(self.rows)
            .is_none_or(|end| end > total_rows)
        {
            return Err(ShapeError::Csr {
                rows: self.rows,
                cols: self.cols,
                reason: format!("rows at offset {offset} do not fit in {total_rows} rows"),
            });
        }
        let nnz = self.indices.len() as u32;
        let mut indptr = Vec::with_capacity(total_rows + 1);
        indptr.resize(offset + 1, 0);
        indptr.extend_from_slice(&self.indptr[1..]);
        indptr.resize(total_rows + 1, nnz);
        Ok(Self {
            rows: total_rows,
            indptr,
            ..self
        })
    }

    /// Presynaptic neurons.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Postsynaptic neurons.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Stored connections.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Row offsets (`rows + 1`).
    pub fn indptr(&self) -> &[u32] {
        &self.indptr
    }

    /// Column of each stored value.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Stored values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Stored values, mutable (for plasticity; the structure stays fixed).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Columns and weights of presynaptic neuron `row`.
    pub fn row(&self, row: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[row] as usize..self.indptr[row + 1] as usize;
        (&self.indices[range.clone()], &self.values[range])
    }

    /// The dense form (for inspection and tests).
    pub fn to_dense(&self) -> DenseWeights {
        let mut values = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            let (cols, ws) = self.row(r);
            for (&c, &w) in cols.iter().zip(ws) {
                values[r * self.cols + c as usize] = w;
            }
        }
        DenseWeights {
            rows: self.rows,
            cols: self.cols,
            values,
        }
    }
}

/// The weights of one projection, in either layout.
#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// Row-major dense.
    Dense(DenseWeights),
    /// Compressed sparse rows.
    Csr(CsrWeights),
}

impl Weights {
    /// Presynaptic neurons.
    pub fn rows(&self) -> usize {
        match self {
            Self::Dense(d) => d.rows,
            Self::Csr(c) => c.rows,
        }
    }

    /// Postsynaptic neurons.
    pub fn cols(&self) -> usize {
        match self {
            Self::Dense(d) => d.cols,
            Self::Csr(c) => c.cols,
        }
    }

    /// The plugin-API view that plasticity rules update.
    pub fn as_weights_mut(&mut self) -> WeightsMut<'_> {
        match self {
            Self::Dense(d) => WeightsMut::Dense {
                rows: d.rows,
                cols: d.cols,
                values: &mut d.values,
            },
            Self::Csr(c) => WeightsMut::Csr {
                rows: c.rows,
                cols: c.cols,
                indptr: &c.indptr,
                indices: &c.indices,
                values: &mut c.values,
            },
        }
    }
}

impl From<DenseWeights> for Weights {
    fn from(d: DenseWeights) -> Self {
        Self::Dense(d)
    }
}

impl From<CsrWeights> for Weights {
    fn from(c: CsrWeights) -> Self {
        Self::Csr(c)
    }
}

fn check_finite(values: &[f32]) -> Result<(), ShapeError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(ShapeError::Value {
            what: "weight",
            reason: format!("value {i} is {}", values[i]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_rejects_wrong_length_and_nan() {
        assert!(matches!(
            DenseWeights::new(2, 3, vec![0.0; 5]),
            Err(ShapeError::DenseLength {
                expected: 6,
                got: 5,
                ..
            })
        ));
        let err = DenseWeights::new(1, 2, vec![0.0, f32::NAN]).unwrap_err();
        assert!(err.to_string().contains("value 1 is NaN"), "{err}");
    }

    #[test]
    fn csr_validation_names_the_problem() {
        let err = CsrWeights::new(2, 3, vec![0, 1], vec![0], vec![1.0]).unwrap_err();
        assert!(err.to_string().contains("indptr has 2 entries"), "{err}");
        let err = CsrWeights::new(1, 3, vec![0, 2], vec![2, 1], vec![1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("not strictly increasing"), "{err}");
        let err = CsrWeights::new(1, 3, vec![0, 1], vec![3], vec![1.0]).unwrap_err();
        assert!(err.to_string().contains("column 3 out of range"), "{err}");
        let err = CsrWeights::new(1, 3, vec![0, 1], vec![0], vec![]).unwrap_err();
        assert!(err.to_string().contains("1 indices but 0 values"), "{err}");
    }

    #[test]
    fn dense_csr_round_trip() {
        let d = DenseWeights::new(2, 3, vec![0.0, 1.5, 0.0, -2.0, 0.0, 3.0]).unwrap();
        let c = CsrWeights::from_dense(&d);
        assert_eq!(c.nnz(), 3);
        assert_eq!(c.row(1), (&[0u32, 2][..], &[-2.0f32, 3.0][..]));
        assert_eq!(c.to_dense(), d);
    }

    #[test]
    fn embedded_rows_keep_their_columns_and_other_rows_are_empty() {
        let c = CsrWeights::new(2, 3, vec![0, 1, 3], vec![2, 0, 1], vec![1.0, 2.0, 3.0]).unwrap();
        let e = c.clone().embed_rows(3, 6).unwrap();
        assert_eq!(e.rows(), 6);
        for r in [0, 1, 2, 5] {
            assert!(e.row(r).0.is_empty(), "row {r}");
        }
        assert_eq!(e.row(3), c.row(0));
        assert_eq!(e.row(4), c.row(1));
        assert!(c.embed_rows(5, 6).is_err());
    }

    #[test]
    fn weights_mut_view_writes_through() {
        let mut w = Weights::from(DenseWeights::filled(2, 2, 1.0).unwrap());
        if let WeightsMut::Dense { values, .. } = w.as_weights_mut() {
            values[3] = 5.0;
        }
        match &w {
            Weights::Dense(d) => assert_eq!(d.values(), &[1.0, 1.0, 1.0, 5.0]),
            Weights::Csr(_) => unreachable!("constructed dense"),
        }
    }
}
