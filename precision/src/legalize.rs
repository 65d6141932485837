//! Legalization of a precision plan: the optimize graph becomes the strongly typed compile graph
//! that TensorRT 10+ builds as written and the CPU runtime simulates exactly.
//!
//! - An fp16 layer reads and writes `float16` values and holds `float16` weights. A `Cast` to
//!   f16 sits where an fp32 value enters the fp16 region and a `Cast` to f32 where an f16 value
//!   leaves it; each value is cast once however many layers read it. A bf16 layer is the same
//!   with `bfloat16`; between an fp16 and a bf16 layer the value passes through f32.
//! - An int8 layer reads `DequantizeLinear(QuantizeLinear(x))` with the plan's per-tensor scale,
//!   and its weights are int8 constants behind a per-channel `DequantizeLinear` (symmetric: zero
//!   points 0, scales `max |w| / 127` per output channel). It computes and writes f32, as
//!   TensorRT's explicit quantization does when no Q/DQ follows the layer.

use super::calibrators::scale;
use super::plan::PrecisionPlan;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use temblor_ir::{
    DType, Graph, Layout, Node, NodeId, Op, OpFamily, Precision, Provenance, Shape, TensorInfo,
    TensorType, ValueRef, Weight, WeightId,
};
use temblor_passes::place;

/// The pass name recorded in the provenance of the nodes legalization adds.
const MADE_BY: &str = "LegalizePrecision";

/// The symmetric int8 range: -127..=127, so that negation is exact and zero points are 0.
const INT8_MAX: f32 = 127.0;

#[derive(Debug, thiserror::Error)]
#[error("precision plan: {0}")]
pub struct LegalizeError(pub String);

/// Whether an op may run in fp16 or bf16: arithmetic and data movement may; casts keep the type
/// they name, and the detection and ops_lib ops (sampling, NMS, box decoding) stay fp32 because
/// their coordinates and score thresholds are where half precision changes results discretely.
pub fn runs_in_half(op: &Op) -> bool {
    op.is_layer()
        && !matches!(op, Op::Cast { .. } | Op::CastLike)
        && !matches!(
            op.family(),
            OpFamily::Detection
                | OpFamily::Custom
                | OpFamily::Quantization
                | OpFamily::Value
                | OpFamily::Opaque
        )
}

/// The output-channel axis of an int8-capable layer's weights (input 1), or `None` when the
/// layer cannot run in int8: convolutions and matrix products with constant f32 weights can.
pub fn int8_weight_axis(g: &Graph, id: NodeId) -> Option<usize> {
    let w = g.constant(g.input(id, 1)?)?;
    if w.dtype != DType::F32 || w.is_shape_only() {
        return None;
    }
    match (&g.node(id).op, w.dims.len()) {
        (Op::Conv(_), 4) => Some(0),
        (Op::Gemm { trans_b: true, .. }, 2) => Some(0),
        (Op::Gemm { trans_b: false, .. }, 2) | (Op::MatMul, 2) => Some(1),
        _ => None,
    }
}

/// The compile graph for `plan`: `g` placed, typed and quantized as described above.
pub fn legalize(g: &Graph, plan: &PrecisionPlan) -> Result<Graph, LegalizeError> {
    let mut out = g.clone();
    place(&mut out);
    let by_name: HashMap<&str, NodeId> = g
        .node_ids()
        .filter(|&id| g.node(id).op.is_layer())
        .map(|id| (g.node(id).name.as_str(), id))
        .collect();
    let mut fp16 = HashSet::new();
    let mut bf16 = HashSet::new();
    let mut int8 = Vec::new();
    for layer in &plan.layers {
        let &id = by_name.get(layer.layer.as_str()).ok_or_else(|| {
            LegalizeError(format!(
                "there is no layer '{}' in the optimize view",
                layer.layer
            ))
        })?;
        let what = || g.describe(id);
        match layer.precision {
            Precision::Fp32 => {}
            Precision::Fp16 if runs_in_half(&g.node(id).op) => {
                fp16.insert(id);
            }
            Precision::Bf16 if runs_in_half(&g.node(id).op) => {
                bf16.insert(id);
            }
            Precision::Fp16 | Precision::Bf16 => {
                return Err(LegalizeError(format!(
                    "{} cannot run in {}",
                    what(),
                    if layer.precision == Precision::Fp16 {
                        "fp16"
                    } else {
                        "bf16"
                    }
                )));
            }
            Precision::Int8 => {
                let axis = int8_weight_axis(g, id).ok_or_else(|| {
                    LegalizeError(format!(
                        "{} cannot run in int8 (only Conv, Gemm and MatMul with constant f32 \
                         weights can)",
                        what()
                    ))
                })?;
                let scale = layer.input_scale.ok_or_else(|| {
                    LegalizeError(format!(
                        "{} is int8 but has no input_scale (calibrate with --calib)",
                        what()
                    ))
                })?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(LegalizeError(format!(
                        "{}: input_scale {scale} is not a positive number",
                        what()
                    )));
                }
                int8.push((id, scale, axis));
            }
        }
        if let Some(p) = out.node_mut(id).placement.as_mut() {
            p.precision = layer.precision;
        }
    }
    let order = out
        .topo_order()
        .map_err(|n| LegalizeError(format!("the graph has a cycle through {}", g.describe(n))))?;
    for (region, half) in [(&bf16, DType::BF16), (&fp16, DType::F16)] {
        let region_order: Vec<NodeId> = order
            .iter()
            .copied()
            .filter(|id| region.contains(id))
            .collect();
        to_half(&mut out, &region_order, region, half);
    }
    for (id, scale, axis) in int8 {
        quantize(&mut out, id, scale, axis)?;
    }
    Ok(out)
}

fn provenance() -> Provenance {
    Provenance::merged(MADE_BY, [])
}

/// Adds a one-output node made by legalization.
fn add(g: &mut Graph, name: String, op: Op, ty: TensorType, inputs: &[ValueRef]) -> ValueRef {
    let mut node = Node::new(name.clone(), op, vec![TensorInfo { name, ty }]);
    node.provenance = provenance();
    let id = g.add_node(node);
    for (port, &v) in inputs.iter().enumerate() {
        g.connect(v, id, port);
    }
    ValueRef::new(id, 0)
}

fn add_weight(g: &mut Graph, name: String, weight: Weight, layout: Layout) -> ValueRef {
    let ty = TensorType {
        dtype: weight.dtype,
        shape: weight.shape(),
        layout,
    };
    let id = g.weights.add(weight);
    add(g, name, Op::Constant { weight: id }, ty, &[])
}

fn retyped(ty: &TensorType, dtype: DType) -> TensorType {
    TensorType {
        dtype,
        ..ty.clone()
    }
}

/// Casts `v` to `dtype`, once per value.
fn cast(
    g: &mut Graph,
    cache: &mut HashMap<ValueRef, ValueRef>,
    v: ValueRef,
    to: DType,
) -> ValueRef {
    if let Some(&c) = cache.get(&v) {
        return c;
    }
    let info = g.value_info(v).clone();
    let suffix = match to {
        DType::F16 => "to_f16",
        DType::BF16 => "to_bf16",
        _ => "to_f32",
    };
    let c = add(
        g,
        format!("{}.{suffix}", info.name),
        Op::Cast { to },
        retyped(&info.ty, to),
        &[v],
    );
    cache.insert(v, c);
    c
}

/// Lowers the layers of `region` (in topological `order`) to `half` (f16 or bf16).
fn to_half(g: &mut Graph, order: &[NodeId], region: &HashSet<NodeId>, half: DType) {
    // Only the values lowered here go back to f32 where they leave the region: a value the
    // model itself has in a half type keeps its type for its readers and as a graph output.
    let mut lowered = HashSet::new();
    for &id in order {
        for (port, info) in g.node_mut(id).outputs.iter_mut().enumerate() {
            if info.ty.dtype == DType::F32 {
                info.ty.dtype = half;
                lowered.insert(ValueRef::new(id, port));
            }
        }
    }
    let mut halves: HashMap<ValueRef, ValueRef> = HashMap::new();
    let mut half_weights: HashMap<WeightId, ValueRef> = HashMap::new();
    for &id in order {
        for (port, v) in g.inputs_of(id).into_iter().enumerate() {
            let Some(v) = v else { continue };
            if region.contains(&v.node)
                || g.value_type(v).dtype != DType::F32
                || stays_f32(&g.node(id).op, port)
            {
                continue;
            }
            let narrowed = match g.node(v.node).op {
                Op::Constant { weight } => match half_weights.get(&weight) {
                    Some(&h) => h,
                    None => {
                        let h = half_constant(g, v, weight, half);
                        half_weights.insert(weight, h);
                        h
                    }
                },
                _ => cast(g, &mut halves, v, half),
            };
            g.disconnect_input(id, port);
            g.connect(narrowed, id, port);
        }
    }
    let mut fulls: HashMap<ValueRef, ValueRef> = HashMap::new();
    for &id in order {
        for port in 0..g.node(id).outputs.len() {
            let v = ValueRef::new(id, port);
            if !lowered.contains(&v) {
                continue;
            }
            let leaving: Vec<(NodeId, usize)> = g
                .consumers(v)
                .into_iter()
                .filter(|(c, _)| !region.contains(c))
                .collect();
            let is_output = g.outputs.iter().any(|o| o.value == v);
            if leaving.is_empty() && !is_output {
                continue;
            }
            let full = cast(g, &mut fulls, v, DType::F32);
            for (c, p) in leaving {
                g.disconnect_input(c, p);
                g.connect(full, c, p);
            }
            for o in g.outputs.iter_mut().filter(|o| o.value == v) {
                o.value = full;
            }
        }
    }
}

/// Operands that say how an op computes rather than what it computes on, and which ONNX types
/// as float whatever the data is: Resize's roi and scales.
fn stays_f32(op: &Op, port: usize) -> bool {
    matches!(op, Op::Resize(_)) && port >= 1
}

/// A `half` (f16 or bf16) copy of the f32 constant behind `v`, rounded to nearest even.
fn half_constant(g: &mut Graph, v: ValueRef, weight: WeightId, half: DType) -> ValueRef {
    let info = g.value_info(v).clone();
    let w = g
        .weights
        .get(weight)
        .expect("a constant node's weight exists");
    let values = w.to_f32().unwrap_or_default();
    let (data, suffix): (Vec<u8>, _) = match half {
        DType::BF16 => (
            values
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect(),
            "bf16",
        ),
        _ => (
            values
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            "f16",
        ),
    };
    let narrowed = Weight {
        dtype: half,
        dims: w.dims.clone(),
        data: Bytes::from(data),
    };
    add_weight(
        g,
        format!("{}.{suffix}", info.name),
        narrowed,
        info.ty.layout,
    )
}

fn int8_weight(dims: Vec<usize>, values: &[i8]) -> Weight {
    Weight {
        dtype: DType::I8,
        dims,
        data: Bytes::from(values.iter().map(|&q| q as u8).collect::<Vec<u8>>()),
    }
}

/// Per output channel along `axis`: `max |w| / 127` (min/max calibration: weights are known,
/// so nothing needs clipping), and the calibrators' tiny positive scale for an all-zero channel.
pub fn per_channel_scales(values: &[f32], dims: &[usize], axis: usize) -> Vec<f32> {
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut max = vec![0f32; channels];
    for (i, &w) in values.iter().enumerate() {
        let c = (i / inner) % channels;
        max[c] = max[c].max(w.abs());
    }
    max.into_iter().map(scale).collect()
}

fn quantize(g: &mut Graph, id: NodeId, scale: f32, axis: usize) -> Result<(), LegalizeError> {
    let name = g.node(id).name.clone();
    let what = g.describe(id);
    let missing = || LegalizeError(format!("{what} lost an input"));
    let x = g.input(id, 0).ok_or_else(missing)?;
    let w = g.input(id, 1).ok_or_else(missing)?;
    let x_ty = g.value_type(x).clone();
    let scalar = |g: &mut Graph, suffix: &str, weight: Weight| {
        add_weight(g, format!("{name}.{suffix}"), weight, Layout::Any)
    };
    let s = scalar(g, "input_scale", Weight::from_f32(vec![], &[scale]));
    let zp = scalar(g, "input_zero_point", int8_weight(vec![], &[0]));
    let q = add(
        g,
        format!("{name}.input_q"),
        Op::QuantizeLinear {
            axis: 1,
            saturate: true,
        },
        retyped(&x_ty, DType::I8),
        &[x, s, zp],
    );
    let dq = add(
        g,
        format!("{name}.input_dq"),
        Op::DequantizeLinear { axis: 1 },
        retyped(&x_ty, DType::F32),
        &[q, s, zp],
    );
    g.disconnect_input(id, 0);
    g.connect(dq, id, 0);

    let weight = g.constant(w).ok_or_else(missing)?.clone();
    let values = weight.to_f32().ok_or_else(missing)?;
    let scales = per_channel_scales(&values, &weight.dims, axis);
    let channels = weight.dims[axis];
    let inner: usize = weight.dims[axis + 1..].iter().product();
    let q_values: Vec<i8> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[(i / inner) % channels];
            (v / s).round_ties_even().clamp(-INT8_MAX, INT8_MAX) as i8
        })
        .collect();
    let w_ty = g.value_type(w).clone();
    let wq = add_weight(
        g,
        format!("{name}.weight_q"),
        int8_weight(weight.dims.clone(), &q_values),
        w_ty.layout,
    );
    let ws = scalar(g, "weight_scale", Weight::from_f32(vec![channels], &scales));
    let wzp = scalar(
        g,
        "weight_zero_point",
        int8_weight(vec![channels], &vec![0; channels]),
    );
    let wdq = add(
        g,
        format!("{name}.weight_dq"),
        Op::DequantizeLinear { axis: axis as i64 },
        TensorType {
            dtype: DType::F32,
            shape: Shape::from_known(&weight.dims),
            layout: w_ty.layout,
        },
        &[wq, ws, wzp],
    );
    g.disconnect_input(id, 1);
    g.connect(wdq, id, 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::per_channel_scales;

    #[test]
    fn weight_scales_are_per_output_channel_max_over_127() {
        let w = [1.0, -2.54, 0.5, 0.0, 0.0, 0.0, 0.127, 0.1, -0.05];
        let rows = per_channel_scales(&w, &[3, 3], 0);
        assert_eq!(rows, vec![2.54 / 127.0, f32::MIN_POSITIVE, 0.127 / 127.0]);
        // Along axis 1 (a MatMul's [K, N] weight) each column is a channel.
        let columns = per_channel_scales(&w, &[3, 3], 1);
        assert_eq!(columns, vec![1.0 / 127.0, 2.54 / 127.0, 0.5 / 127.0]);
    }
}
