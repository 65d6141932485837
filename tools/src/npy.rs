//! `.npy` files in and out of the CLI, as runtime tensors.

use std::path::Path;
use temblor_ir::{Error, Result};
use temblor_runtime::{f16, Tensor, TensorData};

pub fn read(path: &Path) -> Result<Tensor> {
    let fail = |what: String| Error::bad_input(format!("{}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let data_start = check_header(&bytes).map_err(|e| fail(format!("not a .npy file: {e}")))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| fail(format!("not a .npy file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(fail(
            "Fortran-ordered arrays are not supported; save with C order".into(),
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(fail(format!("structured dtype {other:?} is not a tensor"))),
    };
    // The data the shape claims must be in the file before anything is allocated for it.
    let width = descr
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .unwrap_or(1) as usize;
    let available = bytes.len() - data_start;
    let bytes_needed = shape.iter().try_fold(width, |n, &d| n.checked_mul(d));
    if bytes_needed.is_none_or(|n| n > available) {
        return Err(fail(format!(
            "corrupt data: shape {shape:?} of {descr} needs more than the file's {available} bytes of data"
        )));
    }
    let bad = |e: std::io::Error| fail(format!("corrupt data: {e}"));
    let data = match descr.as_str() {
        "<f4" => TensorData::F32(npy.into_vec().map_err(bad)?),
        "<f8" => TensorData::F64(npy.into_vec().map_err(bad)?),
        // npyz reads no half type; the data is the file's last `count * 2` bytes, as in every
        // C-ordered .npy file.
        "<f2" => {
            let count: usize = shape.iter().product();
            let start = bytes
                .len()
                .checked_sub(count * 2)
                .ok_or_else(|| fail("corrupt data: fewer bytes than the shape needs".into()))?;
            TensorData::F16(
                bytes[start..]
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
        }
        "<i8" => TensorData::I64(npy.into_vec().map_err(bad)?),
        "<i4" => TensorData::I32(npy.into_vec().map_err(bad)?),
        "<i2" => TensorData::I16(npy.into_vec().map_err(bad)?),
        "|i1" => TensorData::I8(npy.into_vec().map_err(bad)?),
        "<u8" => TensorData::U64(npy.into_vec().map_err(bad)?),
        "<u4" => TensorData::U32(npy.into_vec().map_err(bad)?),
        "<u2" => TensorData::U16(npy.into_vec().map_err(bad)?),
        "|u1" => TensorData::U8(npy.into_vec().map_err(bad)?),
        "|b1" => TensorData::Bool(npy.into_vec().map_err(bad)?),
        other => {
            return Err(fail(format!(
                "dtype {other} is not supported (little-endian float, int, uint or bool)"
            )))
        }
    };
    Ok(Tensor { shape, data })
}

pub fn write(path: &Path, tensor: &Tensor) -> Result<()> {
    let io = |e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    fn emit<T: npyz::AutoSerialize + Copy, W: std::io::Write>(
        shape: &[u64],
        w: W,
        values: &[T],
    ) -> std::io::Result<()> {
        use npyz::WriterBuilder;
        let mut out = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(w)
            .begin_nd()?;
        out.extend(values.iter().copied())?;
        out.finish()
    }
    /// npyz has no half type and refuses `<f2` for u16 bits, so the format (version 1.0: magic,
    /// a header dict padded to 64 bytes, raw little-endian data) is written here.
    fn emit_f16<W: std::io::Write>(shape: &[u64], mut w: W, values: &[f16]) -> std::io::Result<()> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header = format!("{{'descr': '<f2', 'fortran_order': False, 'shape': {shape}, }}");
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        w.write_all(b"\x93NUMPY\x01\x00")?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        for v in values {
            w.write_all(&v.to_le_bytes())?;
        }
        w.flush()
    }
    match &tensor.data {
        TensorData::F32(v) => emit(&shape, file, v),
        TensorData::F64(v) => emit(&shape, file, v),
        TensorData::F16(v) => emit_f16(&shape, file, v),
        // numpy has no bfloat16: its values are written as the float32 they widen to, exactly.
        TensorData::BF16(v) => emit(
            &shape,
            file,
            &v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        ),
        TensorData::I8(v) => emit(&shape, file, v),
        TensorData::U8(v) => emit(&shape, file, v),
        TensorData::I16(v) => emit(&shape, file, v),
        TensorData::U16(v) => emit(&shape, file, v),
        TensorData::I32(v) => emit(&shape, file, v),
        TensorData::U32(v) => emit(&shape, file, v),
        TensorData::I64(v) => emit(&shape, file, v),
        TensorData::U64(v) => emit(&shape, file, v),
        TensorData::Bool(v) => emit(&shape, file, v),
    }
    .map_err(io)
}

/// Where the data of the .npy file `bytes` starts, once its header is known to lie inside the
/// file and to nest no brackets: `npyz` allocates a header's claimed length before reading it
/// (a 4 GB claim in a 77-byte file), and its parser took minutes on a few hundred nested `[`.
/// A tensor's header is a flat dict (`{'descr': '<f4', 'fortran_order': False, 'shape': (2,
/// 3), }`); nesting only comes with structured dtypes, which are not tensors.
fn check_header(bytes: &[u8]) -> std::result::Result<usize, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("no .npy magic".into());
    }
    let (len, at) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(len).map_err(|_| "header too long")?, 12)
        }
        v => {
            return Err(format!(
                "format version {v} is not one temblor reads (1, 2 or 3)"
            ))
        }
    };
    let end = at
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("its header claims {len} bytes, past the end of the file"))?;
    let mut depth = 0usize;
    for &b in &bytes[at..end] {
        match b {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 2 {
            return Err("its header nests brackets, as only structured dtypes do".into());
        }
    }
    Ok(end)
}

/// A tensor name as a file name: every character outside `[A-Za-z0-9._-]` becomes `_`
/// (Paddle fetch names contain `/`).
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{read, write};
    use temblor_runtime::{f16, Tensor, TensorData};

    #[test]
    fn half_tensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![2, 3], vec![5], vec![]] {
            let n: usize = shape.iter().product();
            let values: Vec<f16> = (0..n).map(|i| f16::from_f32(i as f32 * -0.37)).collect();
            let t = Tensor {
                shape: shape.clone(),
                data: TensorData::F16(values.clone()),
            };
            let path = dir.path().join("h.npy");
            write(&path, &t).unwrap();
            let back = read(&path).unwrap();
            assert_eq!(back.shape, shape);
            assert!(matches!(back.data, TensorData::F16(v) if v == values));
        }
    }
}
