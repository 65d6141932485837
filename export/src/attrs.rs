//! AttributeProto builders, one per ONNX attribute type.

use bytes::Bytes;
use temblor_frontend::onnx_proto::attribute_proto::AttributeType;
use temblor_frontend::onnx_proto::{AttributeProto, GraphProto, TensorProto};
use temblor_ir::{AttrValue, AutoPad, DeformConvAttrs};

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..AttributeProto::default()
    }
}

pub(super) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::Int)
    }
}

pub(super) fn graph(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        g: Some(g),
        ..attr(name, AttributeType::Graph)
    }
}

pub(super) fn flag(name: &str, v: bool) -> AttributeProto {
    int(name, v as i64)
}

pub(super) fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::Float)
    }
}

pub(super) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Bytes::copy_from_slice(v.as_bytes()),
        ..attr(name, AttributeType::String)
    }
}

pub(super) fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        ints: v.into_iter().collect(),
        ..attr(name, AttributeType::Ints)
    }
}

/// `usize` extents (kernel, strides, pads) as INTS.
pub(super) fn sizes(name: &str, v: &[usize]) -> AttributeProto {
    ints(name, v.iter().map(|&x| x as i64))
}

pub(super) fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attr(name, AttributeType::Tensor)
    }
}

/// A source attribute (an ops_lib op's Paddle attribute) as written. Tensor-valued ones are
/// kept by dtype and shape alone in the IR, so they cannot be written back.
pub(super) fn source(name: &str, v: &AttrValue) -> Result<AttributeProto, String> {
    Ok(match v {
        AttrValue::Int(i) => int(name, *i),
        AttrValue::Float(f) => float(name, *f),
        AttrValue::String(s) => string(name, s),
        AttrValue::Ints(v) => ints(name, v.iter().copied()),
        AttrValue::Floats(v) => AttributeProto {
            floats: v.clone(),
            ..attr(name, AttributeType::Floats)
        },
        AttrValue::Strings(v) => AttributeProto {
            strings: v
                .iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
            ..attr(name, AttributeType::Strings)
        },
        AttrValue::Tensor { dtype, dims } => {
            return Err(format!(
            "attribute '{name}' is a tensor ({dtype} {dims:?}) whose values the IR does not keep"
        ))
        }
    })
}

/// Conv's window attributes: kernel, strides, dilations, pads, group.
/// `pads`, or the `auto_pad` that computes them from the input's extent when it is set.
pub(super) fn padding(pads: &[usize], auto_pad: AutoPad) -> AttributeProto {
    match auto_pad {
        AutoPad::NotSet => sizes("pads", pads),
        AutoPad::SameUpper => string("auto_pad", "SAME_UPPER"),
        AutoPad::SameLower => string("auto_pad", "SAME_LOWER"),
    }
}

pub(super) fn window(
    kernel: &[usize; 2],
    strides: &[usize; 2],
    dilations: &[usize; 2],
    pads: &[usize; 4],
    group: usize,
) -> Vec<AttributeProto> {
    vec![
        sizes("kernel_shape", kernel),
        sizes("strides", strides),
        sizes("dilations", dilations),
        sizes("pads", pads),
        int("group", group as i64),
    ]
}

pub(super) fn deform_conv(a: &DeformConvAttrs, group: usize) -> Vec<AttributeProto> {
    let mut v = window(&a.kernel, &a.strides, &a.dilations, &a.pads, group);
    v.push(int("offset_group", a.offset_group as i64));
    v
}
