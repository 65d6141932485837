//! The compile view shows what the precision stage decided: an int8 layer lists the scale of
//! its quantized input and a summary of its per-channel weight scales, and the quantization
//! nodes are layers of their own with their scales.

use temblor_ir::{validate, GraphOutput};
use temblor_tests::builder::{act, Builder};
use temblor_visualize::{render, View};

/// The `layer { ... }` block named `name`.
fn layer<'a>(view: &'a str, name: &str) -> &'a str {
    let wanted = format!("name: \"{name}\"\n");
    view.split("\nlayer {")
        .find(|block| block.trim_start().starts_with(&wanted))
        .unwrap_or_else(|| panic!("no layer {name} in:\n{view}"))
}

/// Whether `block` has the line `key: value`.
fn has(block: &str, key: &str, value: &str) -> bool {
    block.lines().any(|l| l.trim() == format!("{key}: {value}"))
}

#[test]
fn int8_layers_show_their_scales() {
    let mut b = Builder::new("int8 conv", 3);
    let x = b.input("x", act(4));
    let conv = b.int8_conv("conv", x, 4, 0.0213, &[0.01, 0.02, 0.005]);
    b.g.outputs.push(GraphOutput {
        name: "y".into(),
        value: conv,
    });
    validate(&b.g).expect("valid graph");
    let view = render(&b.g, View::Compile);

    let conv = layer(&view, "conv");
    for (key, value) in [
        ("precision", "int8"),
        ("partition", "engine"),
        ("input_scale", "0.0213"),
        ("weight_scale_min", "0.005"),
        ("weight_scale_max", "0.02"),
        ("weight_scale_count", "3"),
    ] {
        assert!(has(conv, key, value), "conv lacks {key}: {value}:\n{conv}");
    }
    for (name, ty) in [
        ("conv.input_q", "QuantizeLinear"),
        ("conv.input_dq", "DequantizeLinear"),
    ] {
        let block = layer(&view, name);
        assert!(has(block, "type", &format!("\"{ty}\"")), "{block}");
        assert!(has(block, "scale", "0.0213"), "{block}");
    }
    let weight_dq = layer(&view, "conv.weight_dq");
    assert!(has(weight_dq, "scale_count", "3"), "{weight_dq}");

    // Scales are the compile stage's: the optimize view of the same graph has none.
    let optimize = render(&b.g, View::Optimize);
    let scale_fields = optimize.lines().filter(|l| {
        let l = l.trim();
        ["scale", "input_scale", "weight_scale"]
            .iter()
            .any(|k| l.starts_with(&format!("{k}:")) || l.starts_with(&format!("{k}_")))
    });
    assert_eq!(scale_fields.count(), 0, "{optimize}");
}
