//! Rules of the windowed pools, MaxPool and AveragePool, over 1 to 3 trailing spatial axes.

use temblor_ir::{AutoPad, DType, Dim, Layout, PoolAttrs, Shape, TensorType};

/// One spatial extent of the output, as ONNX defines it: in ceil mode the last window must
/// still start inside the input or its leading padding.
fn extent(a: &PoolAttrs, i: usize, input: &Dim) -> Result<Dim, String> {
    let k = a.kernel.len();
    let (s, pb, pe) = (a.strides[i], a.pads[i], a.pads[k + i]);
    let eff = (a.kernel[i].max(1) - 1)
        .saturating_mul(a.dilations[i])
        .saturating_add(1);
    Ok(match input {
        Dim::Known(n) => {
            let padded = n.saturating_add(pb).saturating_add(pe);
            let span = padded
                .checked_sub(eff)
                .ok_or_else(|| format!("window extent {eff} exceeds the padded input {padded}"))?;
            let mut out = if a.ceil_mode {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            };
            if a.ceil_mode && (out - 1) * s >= n.saturating_add(pb) {
                out -= 1;
            }
            Dim::Known(out)
        }
        d if s == 1 && pb.saturating_add(pe).saturating_add(1) == eff => d.clone(),
        _ => Dim::Unknown,
    })
}

/// The output types of a MaxPool (values, then int64 indices when asked) or AveragePool.
/// SAME pads made explicit, once the input's spatial extents are known (see [`AutoPad`]).
pub(super) fn explicit_pads(a: &PoolAttrs, x: &TensorType) -> Option<PoolAttrs> {
    if a.auto_pad == AutoPad::NotSet {
        return None;
    }
    let known = x.shape.known()?;
    Some(a.resolved(known.get(2..)?))
}

pub(super) fn window(
    a: &PoolAttrs,
    x: &TensorType,
    n_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    let k = a.kernel.len();
    let d = x.shape.dims();
    if d.len() != k + 2 {
        return Err(format!(
            "a {k}-D window needs an input of rank {}, got {}",
            k + 2,
            x.shape
        ));
    }
    if a.strides.len() != k || a.dilations.len() != k || a.pads.len() != 2 * k {
        return Err(format!(
            "strides {:?}, dilations {:?} and pads {:?} do not match a {k}-D kernel",
            a.strides, a.dilations, a.pads
        ));
    }
    if a.strides.contains(&0) || a.dilations.contains(&0) {
        return Err("strides and dilations must be positive".into());
    }
    let mut out = d[..2].to_vec();
    for i in 0..k {
        out.push(extent(a, i, &d[2 + i])?);
    }
    let layout = if out.len() == 4 {
        Layout::NCHW
    } else {
        Layout::Any
    };
    let values = TensorType {
        dtype: x.dtype,
        shape: Shape(out),
        layout,
    };
    let indices = TensorType {
        dtype: DType::I64,
        ..values.clone()
    };
    Ok([values, indices]
        .into_iter()
        .take(n_outputs.max(1))
        .collect())
}
