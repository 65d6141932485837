//! DeformSample, the deformable im2col tensor `[N, C*kH*kW, Ho, Wo]` that a plain grouped
//! Conv consumes. Written as GridSample: every kernel tap's sampling position (its regular
//! position plus the learned offset) becomes one point of a grid, sampled bilinearly with
//! zeros outside the map, times the mask. TensorRT runs GridSample natively and in any
//! precision, and the Conv after it stays a plain Conv that int8 Q/DQ can take. Where shapes
//! are not static, DeformConv with a one-hot weight computes the same tensor (TensorRT maps it
//! to a plugin of its own library, fp32/fp16 only).

use super::attrs::{deform_conv, int};
use super::emit::Emitter;
use super::lower::Lower;
use super::model::scalar_bytes;
use super::sub::Sub;
use bytes::Bytes;
use temblor_ir::{DType, DeformConvAttrs};

pub(super) fn deform_sample(
    em: &mut Emitter,
    cx: &Lower,
    a: &DeformConvAttrs,
) -> Result<(), String> {
    let Err(_) = em.attempt(|em| grid_sample(&mut Sub::new(em, cx.name()), cx, a)) else {
        return Ok(());
    };
    one_hot_deform_conv(em, cx, a)
}

/// The static extents GridSample's grid is built from.
struct Extents {
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

fn extents(cx: &Lower) -> Result<Extents, String> {
    let known = |port: usize, axis: usize| -> Result<usize, String> {
        cx.in_type(port)?
            .shape
            .dims()
            .get(axis)
            .and_then(|d| d.known())
            .ok_or_else(|| format!("input {port}'s axis {axis} is not known at compile time"))
    };
    Ok(Extents {
        c: known(0, 1)?,
        h: known(0, 2)?,
        w: known(0, 3)?,
        oh: known(1, 2)?,
        ow: known(1, 3)?,
    })
}

fn grid_sample(s: &mut Sub, cx: &Lower, a: &DeformConvAttrs) -> Result<(), String> {
    if cx.in_type(0)?.dtype != DType::F32 {
        return Err("the GridSample form is written for float32".into());
    }
    let e = extents(cx)?;
    let (g, [kh, kw]) = (a.offset_group, a.kernel);
    if g == 0 || e.c % g != 0 {
        return Err(format!("{} channels in {g} offset groups", e.c));
    }
    let (kk, cg) = (kh * kw, e.c / g);
    let (kk_i, g_i, cg_i) = (kk as i64, g as i64, cg as i64);
    let (oh, ow) = (e.oh as i64, e.ow as i64);
    // Each tap's regular position (x, y), laid out [1, 1, Ho, Wo, kk, 2].
    let mut base = Vec::with_capacity(e.oh * e.ow * kk * 2);
    for i in 0..e.oh {
        for j in 0..e.ow {
            for k in 0..kk {
                let (ki, kj) = (k / kw, k % kw);
                let y = (i * a.strides[0] + ki * a.dilations[0]) as f32 - a.pads[0] as f32;
                let x = (j * a.strides[1] + kj * a.dilations[1]) as f32 - a.pads[1] as f32;
                base.extend([x, y]);
            }
        }
    }
    let base = s.f32s("base_grid", &[1, 1, e.oh, e.ow, kk, 2], &base);
    // Offsets come as (dy, dx) per tap; GridSample wants (x, y) last.
    let off = s.reshape("offsets", &cx.ins[1], &[-1, g_i, kk_i, 2, oh, ow]);
    let off = s.transpose("offsets_last", &off, &[0, 1, 4, 5, 2, 3]);
    let swap = s.i64s("xy", &[1, 0]);
    let off = s.op("Gather", "offsets_xy", &[&off, &swap], vec![int("axis", 5)]);
    let pos = s.binary("Add", "positions", &base, &off);
    // align_corners=0: pixel x = ((gx + 1) * W - 1) / 2, so gx = (2x + 1) / W - 1.
    let two = s.f32("two", 2.0);
    let one = s.f32("one", 1.0);
    let size = s.f32s("extent", &[2], &[e.w as f32, e.h as f32]);
    let grid = s.binary("Mul", "doubled", &pos, &two);
    let grid = s.binary("Add", "centred", &grid, &one);
    let grid = s.binary("Div", "scaled", &grid, &size);
    let grid = s.binary("Sub", "normalized", &grid, &one);
    let grid = s.reshape("grid", &grid, &[-1, oh, ow * kk_i, 2]);
    let x = s.reshape("groups", &cx.ins[0], &[-1, cg_i, e.h as i64, e.w as i64]);
    let sampled = s.op(
        "GridSample",
        "sample",
        &[&x, &grid],
        vec![int("align_corners", 0)],
    );
    let mut taps = s.reshape("taps", &sampled, &[-1, g_i, cg_i, oh, ow, kk_i]);
    if let Some(mask) = cx.ins.get(2).filter(|m| !m.is_empty()) {
        let m = s.reshape("mask_taps", mask, &[-1, g_i, 1, kk_i, oh, ow]);
        let m = s.transpose("mask_last", &m, &[0, 1, 2, 4, 5, 3]);
        taps = s.binary("Mul", "masked", &taps, &m);
    }
    let cols = s.transpose("columns", &taps, &[0, 1, 2, 5, 3, 4]);
    let shape = s.i64s("im2col_shape", &[-1, (e.c * kk) as i64, oh, ow]);
    s.op_into(
        "Reshape",
        "im2col",
        &[&cols, &shape],
        &[&cx.outs[0]],
        vec![],
    );
    Ok(())
}

/// DeformSample as a DeformConv with one group per input channel and a one-hot weight:
/// output channel `c*kH*kW + k` takes input channel `c` at kernel tap `k` with weight 1.
fn one_hot_deform_conv(em: &mut Emitter, cx: &Lower, a: &DeformConvAttrs) -> Result<(), String> {
    let x = cx.in_type(0)?;
    let channels = x
        .shape
        .dims()
        .get(1)
        .and_then(|d| d.known())
        .ok_or("the input's channel count must be known to write it as a DeformConv")?;
    if channels % a.offset_group != 0 {
        return Err(format!(
            "{channels} channels do not divide into {} offset groups",
            a.offset_group
        ));
    }
    let [kh, kw] = a.kernel;
    let taps = kh * kw;
    let dtype = cx.dtype(x.dtype);
    let (one, zero) = (scalar_bytes(dtype, 1.0), scalar_bytes(dtype, 0.0));
    let mut data = Vec::with_capacity(channels * taps * taps * one.len());
    for row in 0..channels * taps {
        for tap in 0..taps {
            data.extend_from_slice(if tap == row % taps { &one } else { &zero });
        }
    }
    let w = em.constant(
        &format!("{}.one_hot", cx.name()),
        dtype,
        &[channels * taps, 1, kh, kw],
        Bytes::from(data),
    );
    let mask = cx.ins.get(2).cloned().unwrap_or_default();
    let ins = vec![cx.ins[0].clone(), w, cx.ins[1].clone(), String::new(), mask];
    em.node(
        "DeformConv",
        cx.name(),
        ins,
        cx.outs.clone(),
        deform_conv(a, channels),
    );
    Ok(())
}
