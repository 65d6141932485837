//! IR ops that are several ONNX ops: a convolution or transposed one with its fused epilogue,
//! activations ONNX lacks, Clip with absent bounds, and opset-11 Softmax over flattened axes.

use super::attrs::{float, int};
use super::attrs::{padding, window};
use super::emit::Emitter;
use super::lower::Lower;
use temblor_frontend::onnx_proto::AttributeProto;
use temblor_ir::{Activation, ConvAttrs, ConvTransposeAttrs, DType};

/// `affine(act(conv(x, w) + bias + residual))`: Conv (bias is its third input), an Add of the
/// residual, the activation, then a Mul and an Add of the affine's scalars, as the CPU
/// epilogue computes it.
pub(super) fn conv(em: &mut Emitter, cx: &Lower, a: &ConvAttrs) -> Result<(), String> {
    let name = cx.name();
    let out = cx.outs[0].clone();
    let dtype = cx.dtype(cx.node.outputs[0].ty.dtype);
    let residual = cx.ins.get(3).filter(|r| !r.is_empty()).cloned();
    let last_step = |em: &mut Emitter, base: &str, last: bool| {
        if last {
            out.clone()
        } else {
            em.value(&format!("{name}.{base}"))
        }
    };
    let conv_out = last_step(em, "conv", residual.is_none() && a.activation.is_none());
    let mut attrs = window(&a.kernel, &a.strides, &a.dilations, &a.pads, a.group);
    attrs[3] = padding(&a.pads, a.auto_pad);
    let ins = cx.ins.iter().take(3).cloned().collect();
    em.node("Conv", name, ins, vec![conv_out.clone()], attrs);
    let mut x = conv_out;
    if let Some(r) = residual {
        let sum = last_step(em, "residual", a.activation.is_none());
        em.node(
            "Add",
            &format!("{name}.residual_add"),
            vec![x, r],
            vec![sum.clone()],
            vec![],
        );
        x = sum;
    }
    if let Some(act) = a.activation {
        let activated = last_step(em, "activation", a.affine.is_none());
        activation(em, name, act, &x, &activated, dtype);
        x = activated;
    }
    if let Some(affine) = a.affine {
        let scaled = em.value(&format!("{name}.scaled"));
        let scale = em.scalar(&format!("{name}.scale"), dtype, affine.scale as f64);
        let shift = em.scalar(&format!("{name}.shift"), dtype, affine.shift as f64);
        em.node(
            "Mul",
            &format!("{name}.affine_scale"),
            vec![x, scale],
            vec![scaled.clone()],
            vec![],
        );
        em.node(
            "Add",
            &format!("{name}.affine_shift"),
            vec![scaled, shift],
            vec![out],
            vec![],
        );
    }
    Ok(())
}

/// `act(conv_transpose(x, w) + bias)`: ConvTranspose with `attrs`, then the activation.
pub(super) fn conv_transpose(
    em: &mut Emitter,
    cx: &Lower,
    a: &ConvTransposeAttrs,
    attrs: Vec<AttributeProto>,
) {
    let Some(act) = a.activation else {
        return cx.same(em, "ConvTranspose", attrs);
    };
    let name = cx.name();
    let sum = em.value(&format!("{name}.conv_transpose"));
    em.node(
        "ConvTranspose",
        name,
        cx.ins.clone(),
        vec![sum.clone()],
        attrs,
    );
    let dtype = cx.dtype(cx.node.outputs[0].ty.dtype);
    activation(em, name, act, &sum, &cx.outs[0], dtype);
}

/// `y = act(x)`, nodes named after the layer `layer`.
fn activation(em: &mut Emitter, layer: &str, act: Activation, x: &str, y: &str, dtype: DType) {
    let name = format!("{layer}.{}", act.name());
    let one = |em: &mut Emitter, op: &str, attrs| {
        em.node(op, &name, vec![x.into()], vec![y.into()], attrs);
    };
    match act {
        Activation::Relu => one(em, "Relu", vec![]),
        Activation::Sigmoid => one(em, "Sigmoid", vec![]),
        Activation::HardSwish => one(em, "HardSwish", vec![]),
        Activation::Mish => one(em, "Mish", vec![]),
        Activation::LeakyRelu { alpha } => one(em, "LeakyRelu", vec![float("alpha", alpha)]),
        Activation::HardSigmoid { alpha, beta } => one(
            em,
            "HardSigmoid",
            vec![float("alpha", alpha), float("beta", beta)],
        ),
        Activation::Clip { min, max } => clip(em, &name, x, dtype, min, max, y),
        Activation::Silu => {
            let s = em.value(&format!("{layer}.sigmoid"));
            em.node(
                "Sigmoid",
                &format!("{name}.sigmoid"),
                vec![x.into()],
                vec![s.clone()],
                vec![],
            );
            em.node("Mul", &name, vec![x.into(), s], vec![y.into()], vec![]);
        }
    }
}

/// Clip with its bounds as scalar inputs of the clipped tensor's dtype; the IR's `f32::MIN` and
/// `f32::MAX` stand for absent bounds and become omitted inputs.
pub(super) fn clip(
    em: &mut Emitter,
    name: &str,
    x: &str,
    dtype: DType,
    min: f32,
    max: f32,
    y: &str,
) {
    let bound = |em: &mut Emitter, what: &str, v: f32, absent: f32| {
        if v == absent {
            String::new()
        } else {
            em.scalar(&format!("{name}.{what}"), dtype, v as f64)
        }
    };
    let lo = bound(em, "min", min, f32::MIN);
    let hi = bound(em, "max", max, f32::MAX);
    em.node("Clip", name, vec![x.into(), lo, hi], vec![y.into()], vec![]);
}

/// Softmax along `axis`; with `flatten` (opsets before 13) over all axes from `axis` on, which
/// is Flatten, a Softmax of the rows, and a Reshape back.
pub(super) fn softmax(
    em: &mut Emitter,
    cx: &Lower,
    axis: i64,
    log: bool,
    flatten: bool,
) -> Result<(), String> {
    let op = if log { "LogSoftmax" } else { "Softmax" };
    let rank = cx.in_type(0)?.shape.rank() as i64;
    let k = if axis < 0 { axis + rank } else { axis };
    if !flatten || k == rank - 1 {
        let axis = if flatten { -1 } else { axis };
        cx.same(em, op, vec![int("axis", axis)]);
        return Ok(());
    }
    let name = cx.name();
    let x = cx.ins[0].clone();
    let rows = em.value(&format!("{name}.rows"));
    let soft = em.value(&format!("{name}.softmax"));
    let shape = em.value(&format!("{name}.shape"));
    em.node(
        "Flatten",
        &format!("{name}.flatten"),
        vec![x.clone()],
        vec![rows.clone()],
        vec![int("axis", k)],
    );
    em.node(
        op,
        name,
        vec![rows],
        vec![soft.clone()],
        vec![int("axis", 1)],
    );
    em.node(
        "Shape",
        &format!("{name}.shape"),
        vec![x],
        vec![shape.clone()],
        vec![],
    );
    em.node(
        "Reshape",
        &format!("{name}.reshape"),
        vec![soft, shape],
        cx.outs.clone(),
        vec![],
    );
    Ok(())
}
