use crate::DType;
use crate::Shape;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Index into the [`WeightStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WeightId(pub u32);

/// One constant tensor. `data` is little-endian, C-ordered and exactly
/// `dims.product() * dtype.size_bytes()` long; it may be a slice of a memory-mapped model file,
/// so it is never copied into protobuf messages or duplicated per consumer.
#[derive(Clone, Debug)]
pub struct Weight {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub data: Bytes,
}

impl Weight {
    /// A weight known by dtype and shape alone, from a model given without its parameters: it
    /// can be shown and analysed but not computed with.
    pub fn shape_only(dtype: DType, dims: Vec<usize>) -> Weight {
        Weight {
            dtype,
            dims,
            data: Bytes::new(),
        }
    }

    /// Whether the values are missing (see [`Weight::shape_only`]).
    pub fn is_shape_only(&self) -> bool {
        self.data.len() != self.element_count() * self.dtype.size_bytes()
    }

    pub fn element_count(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn shape(&self) -> Shape {
        Shape::from_known(&self.dims)
    }

    /// f32 values of an f32 weight; `None` for any other dtype.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32 && !self.is_shape_only()).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Integer values of an integer weight (i64, i32), widened; `None` otherwise.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        if self.is_shape_only() {
            return None;
        }
        match self.dtype {
            DType::I64 => Some(
                self.data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                    .collect(),
            ),
            DType::I32 => Some(
                self.data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("chunk of 4")) as i64)
                    .collect(),
            ),
            _ => None,
        }
    }

    pub fn from_f32(dims: Vec<usize>, values: &[f32]) -> Weight {
        let mut data = Vec::with_capacity(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        Weight {
            dtype: DType::F32,
            dims,
            data: Bytes::from(data),
        }
    }

    pub fn from_i64(dims: Vec<usize>, values: &[i64]) -> Weight {
        let mut data = Vec::with_capacity(values.len() * 8);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        Weight {
            dtype: DType::I64,
            dims,
            data: Bytes::from(data),
        }
    }
}

/// All constant tensors of a graph. Entries are never removed while a graph is rewritten (ids
/// stay valid); the package writer keeps only the ones still referenced.
#[derive(Clone, Debug, Default)]
pub struct WeightStore {
    weights: Vec<Weight>,
}

impl WeightStore {
    pub fn add(&mut self, weight: Weight) -> WeightId {
        let id = WeightId(self.weights.len() as u32);
        self.weights.push(weight);
        id
    }

    pub fn get(&self, id: WeightId) -> Option<&Weight> {
        self.weights.get(id.0 as usize)
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (WeightId, &Weight)> {
        self.weights
            .iter()
            .enumerate()
            .map(|(i, w)| (WeightId(i as u32), w))
    }
}
