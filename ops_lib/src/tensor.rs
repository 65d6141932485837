//! The tensors ops_lib kernels read and write: plain vectors with their extents, so the crate
//! depends on no runtime and any executor (CPU runtime, tests, a future plugin shim) can call it.

/// An input: borrowed elements and extents.
#[derive(Clone, Copy, Debug)]
pub struct LibView<'a> {
    pub dims: &'a [usize],
    pub data: LibSlice<'a>,
}

#[derive(Clone, Copy, Debug)]
pub enum LibSlice<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

/// An output: owned elements and extents.
#[derive(Clone, Debug, PartialEq)]
pub struct LibTensor {
    pub dims: Vec<usize>,
    pub data: LibData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LibData {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl<'a> LibView<'a> {
    /// The elements as f32, or an error naming the operand.
    pub fn f32(&self, what: &str) -> Result<&'a [f32], String> {
        match self.data {
            LibSlice::F32(v) => Ok(v),
            _ => Err(format!("{what} must be float32")),
        }
    }

    /// The elements as i64, widening int32.
    pub fn ints(&self, what: &str) -> Result<Vec<i64>, String> {
        match self.data {
            LibSlice::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            LibSlice::I64(v) => Ok(v.to_vec()),
            LibSlice::F32(_) => Err(format!("{what} must be an integer tensor")),
        }
    }
}

impl LibTensor {
    pub fn f32(dims: Vec<usize>, data: Vec<f32>) -> LibTensor {
        LibTensor {
            dims,
            data: LibData::F32(data),
        }
    }

    pub fn i32(dims: Vec<usize>, data: Vec<i32>) -> LibTensor {
        LibTensor {
            dims,
            data: LibData::I32(data),
        }
    }

    pub fn i64(dims: Vec<usize>, data: Vec<i64>) -> LibTensor {
        LibTensor {
            dims,
            data: LibData::I64(data),
        }
    }
}
