//! The quantization scales the compile view shows. An int8 layer reads its input through
//! `DequantizeLinear(QuantizeLinear(x, s, 0), s, 0)` and its weights through a per-channel
//! `DequantizeLinear(w_i8, scales, 0)`; the layer lists `input_scale` (s) and a summary of the
//! weight scales (`weight_scale_min`, `weight_scale_max`, `weight_scale_count`). A
//! QuantizeLinear or DequantizeLinear layer lists its own scale the same way (`scale`, or the
//! three-field summary when it is per channel).

use crate::prototxt::{float, Writer};
use temblor_ir::{Graph, NodeId, Op, Precision, ValueRef};

/// Writes the scale fields of layer `id`, if it is int8 or a quantization node.
pub(crate) fn write_scales(w: &mut Writer, g: &Graph, id: NodeId) {
    let node = g.node(id);
    if matches!(
        node.op,
        Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. }
    ) {
        if let Some(scales) = g.input(id, 1).and_then(|v| constant_values(g, v)) {
            write_summary(w, "scale", &scales);
        }
        return;
    }
    if node.placement.map(|p| p.precision) != Some(Precision::Int8) {
        return;
    }
    if let Some(scales) = dequantize_scales(g, g.input(id, 0)) {
        write_summary(w, "input_scale", &scales);
    }
    if let Some(scales) = dequantize_scales(g, g.input(id, 1)) {
        write_summary(w, "weight_scale", &scales);
    }
}

/// One value as `key`, several as `key_min`, `key_max` and `key_count`.
fn write_summary(w: &mut Writer, key: &str, scales: &[f32]) {
    match scales {
        [] => {}
        [s] => w.field(key, &float(*s)),
        _ => {
            let min = scales.iter().copied().fold(f32::INFINITY, f32::min);
            let max = scales.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            w.field(&format!("{key}_min"), &float(min));
            w.field(&format!("{key}_max"), &float(max));
            w.field(&format!("{key}_count"), &scales.len().to_string());
        }
    }
}

/// The scales of the DequantizeLinear that produces `value`, when one does and they are known.
fn dequantize_scales(g: &Graph, value: Option<ValueRef>) -> Option<Vec<f32>> {
    let producer = value?.node;
    if !matches!(g.node(producer).op, Op::DequantizeLinear { .. }) {
        return None;
    }
    constant_values(g, g.input(producer, 1)?)
}

/// The values of a constant with data (a weight known by shape alone has none to show).
fn constant_values(g: &Graph, value: ValueRef) -> Option<Vec<f32>> {
    g.constant(value)?.to_f32()
}
