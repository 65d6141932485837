//! The precision contract's compile form, built by hand and exported: Casts around an fp16
//! conv, QuantizeLinear/DequantizeLinear around an int8 one. compile.onnx keeps them as they
//! are; onnxruntime runs compile.ort.onnx as temblor runs the package.

mod onnx_export;

use onnx_export::{
    assert_dense_agree, assert_isolated_agree, check_exports, export, initializer_types, op_count,
    run_both,
};
use temblor_ir::{
    Activation, ConvAttrs, DType, GraphOutput, Layout, Op, Shape, TensorType, ValueRef, Weight,
};
use temblor_runtime::{f16, Tensor};
use temblor_tests::builder::Builder;

fn f16_weight(dims: &[usize], values: &[f32]) -> Weight {
    Weight {
        dtype: DType::F16,
        dims: dims.to_vec(),
        data: values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
    }
}

fn i8_weight(dims: &[usize], values: &[i8]) -> Weight {
    Weight {
        dtype: DType::I8,
        dims: dims.to_vec(),
        data: values.iter().map(|&v| v as u8).collect::<Vec<u8>>().into(),
    }
}

fn typed(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType {
        dtype,
        shape: Shape::from_known(dims),
        layout: Layout::NCHW,
    }
}

fn conv3x3(activation: Option<Activation>) -> Op {
    Op::Conv(ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        activation,
        affine: None,
    })
}

/// A graph in the precision contract's compile form: an fp16 conv (f16 weights, fused Clip)
/// between Casts, then an int8 conv whose input is QuantizeLinear -> DequantizeLinear with a
/// per-tensor scale and whose weight is a per-channel DequantizeLinear of int8 values, with a
/// fused residual add and SiLU. A second output is the graph input itself.
fn precision_graph() -> temblor_ir::Graph {
    let (c_in, c) = (4, 8);
    let mut b = Builder::new("precision", 7);
    let x = b.input("x", typed(DType::F32, &[1, c_in, 8, 8]));
    let to_f16 = b.node(
        "x.to_f16",
        Op::Cast { to: DType::F16 },
        typed(DType::F16, &[1, c_in, 8, 8]),
        &[x],
    );
    let w: Vec<f32> = b.rng.values(c * c_in * 9);
    let w = b.weight("conv_a.w", f16_weight(&[c, c_in, 3, 3], &w), Layout::OIHW);
    let bias: Vec<f32> = b.rng.values(c);
    let bias = b.weight("conv_a.b", f16_weight(&[c], &bias), Layout::C);
    let clip = Activation::Clip { min: 0.0, max: 6.0 };
    let a = b.node(
        "conv_a",
        conv3x3(Some(clip)),
        typed(DType::F16, &[1, c, 8, 8]),
        &[to_f16, w, bias],
    );
    let a32 = b.node(
        "conv_a.to_f32",
        Op::Cast { to: DType::F32 },
        typed(DType::F32, &[1, c, 8, 8]),
        &[a],
    );
    let scale = b.constant("conv_b.input_scale", &[], vec![6.0 / 127.0], Layout::Any);
    let zero = b.weight("conv_b.input_zero", i8_weight(&[], &[0]), Layout::Any);
    let q = b.node(
        "conv_b.input_q",
        Op::QuantizeLinear {
            axis: 1,
            saturate: true,
        },
        typed(DType::I8, &[1, c, 8, 8]),
        &[a32, scale, zero],
    );
    let dq = b.node(
        "conv_b.input_dq",
        Op::DequantizeLinear { axis: 1 },
        typed(DType::F32, &[1, c, 8, 8]),
        &[q, scale, zero],
    );
    let w8: Vec<i8> = b
        .rng
        .bytes(c * c * 9)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let w8 = b.weight("conv_b.w", i8_weight(&[c, c, 3, 3], &w8), Layout::OIHW);
    let scales: Vec<f32> = (0..c).map(|i| 0.002 + 0.001 * i as f32).collect();
    let scales = b.constant("conv_b.w_scale", &[c], scales, Layout::C);
    let zeros = b.weight("conv_b.w_zero", i8_weight(&[c], &[0; 8]), Layout::C);
    let wdq = b.node(
        "conv_b.weight_dq",
        Op::DequantizeLinear { axis: 0 },
        typed(DType::F32, &[c, c, 3, 3]),
        &[w8, scales, zeros],
    );
    let bias = b.random("conv_b.b", &[c], Layout::C);
    let y = b.node(
        "conv_b",
        conv3x3(Some(Activation::Silu)),
        typed(DType::F32, &[1, c, 8, 8]),
        &[dq, wdq, bias, a32],
    );
    b.g.outputs = vec![
        GraphOutput {
            name: "y".into(),
            value: y,
        },
        GraphOutput {
            name: "x_again".into(),
            value: ValueRef::new(x.node, 0),
        },
    ];
    temblor_ir::validate(&b.g).expect("a valid graph");
    b.g
}

/// The contract's Cast and Q/DQ structure, built by hand: compile.onnx keeps it as it is (f16
/// and int8 initializers, the Casts and Q/DQ nodes unchanged); compile.ort.onnx holds the
/// float16 values widened, each rounded by a Cast pair; onnxruntime runs it as temblor does.
#[test]
fn casts_and_qdq_export_as_they_are_and_match_temblor_run() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("precision.temblor");
    std::fs::create_dir(&pkg).unwrap();
    temblor_ir::package::write(&precision_graph(), &pkg).expect("package written");
    export(&pkg);
    let (trt, ort) = check_exports(&pkg);
    for (op, n) in [
        ("Cast", 2),
        ("QuantizeLinear", 1),
        ("DequantizeLinear", 2),
        ("Conv", 2),
        ("Clip", 1),
        ("Sigmoid", 1),
        ("Identity", 1),
    ] {
        assert_eq!(op_count(&trt, op), n, "{op} in {trt}");
    }
    // Two float16 values (x.to_f16, conv_a), each rounded by a pair of Casts.
    assert_eq!(op_count(&ort, "Cast"), 2 + 2 * 2, "{ort}");
    let types = initializer_types(&trt);
    assert!(
        types.contains("FLOAT16") && types.contains("INT8"),
        "{types:?}"
    );
    let types = initializer_types(&ort);
    assert!(
        !types.contains("FLOAT16") && types.contains("INT8"),
        "{types:?}"
    );
    let x = dir.path().join("x.npy");
    let values = temblor_tests::Rng(3).values(4 * 64);
    let input = Tensor::f32(vec![1, 4, 8, 8], values.iter().map(|v| v * 3.0).collect());
    temblor_tools::npy::write(&x, &input).expect("input written");
    let inputs = [("x", x)];
    let (ours, theirs) = run_both(&pkg, &inputs, dir.path());
    assert_dense_agree(&ours, &theirs, 1e-3);
    assert_isolated_agree(&pkg, &inputs, dir.path(), 1e-3);
}
