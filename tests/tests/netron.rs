//! The prototxt views open in the real Netron: every canonical op, symbolic dimensions and
//! awkward names and values, in all three views, drawn with the expected node count.
//!
//! Needs the Python venv with the `netron` and `playwright` packages
//! (`$TEMBLOR_VENV`, default `~/.cache/temblor/venv`) and Debian's `/usr/bin/chromium`; the test
//! fails, saying what is missing, without them. Set `TEMBLOR_NETRON_SHOTS=DIR` to keep a PNG
//! of each drawn graph.

use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_ir::{
    AttrValue, BinaryOp, ConvAttrs, ConvTransposeAttrs, DType, Dim, Framework, Graph, GraphOutput,
    Layout, Node, NodeId, Op, Origin, Partition, Placement, Precision, Provenance, ResizeAttrs,
    ResizeCoordinate, ResizeMode, ResizeNearest, Shape, SplitSizes, TensorInfo, TensorType,
    UnaryOp, ValueRef, Weight,
};
use temblor_tests::{output, real_model, temblor};
use temblor_visualize::{render, View};

/// Opens each prototxt in Netron and checks it loads without error and draws the given number
/// of nodes: one per `layer` plus one per graph `input` (`g.layer_count() + g.inputs.len()`
/// for a rendered graph). Panics with Netron's report otherwise.
pub fn check_in_netron(files: &[(PathBuf, usize)]) {
    let python = temblor_tests::python();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: install Debian's chromium package"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("netron/check_netron.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script);
    if let Some(dir) = std::env::var_os("TEMBLOR_NETRON_SHOTS") {
        cmd.arg("--screenshots").arg(dir);
    }
    for (path, nodes) in files {
        cmd.arg(format!("{}:{nodes}", path.display()));
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad report line {l:?}: {e}")))
        .collect();
    assert!(
        out.status.success() && reports.len() == files.len(),
        "Netron check failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn f32_info(name: &str, dims: Vec<Dim>, layout: Layout) -> TensorInfo {
    let mut ty = TensorType::new(DType::F32, Shape(dims));
    ty.layout = layout;
    TensorInfo {
        name: name.into(),
        ty,
    }
}

/// `[N, c, h, w]` with a symbolic batch.
fn nchw(name: &str, c: usize, h: usize, w: usize) -> TensorInfo {
    let dims = vec![
        Dim::Symbol("N".into()),
        Dim::Known(c),
        Dim::Known(h),
        Dim::Known(w),
    ];
    f32_info(name, dims, Layout::NCHW)
}

fn constant(g: &mut Graph, name: &str, weight: Weight, layout: Layout) -> ValueRef {
    let mut ty = TensorType::new(weight.dtype, weight.shape());
    ty.layout = layout;
    let info = TensorInfo {
        name: name.into(),
        ty,
    };
    let weight = g.weights.add(weight);
    ValueRef::new(
        g.add_node(Node::new(name, Op::Constant { weight }, vec![info])),
        0,
    )
}

fn floats(g: &mut Graph, name: &str, dims: &[usize], layout: Layout) -> ValueRef {
    let n = dims.iter().product();
    constant(
        g,
        name,
        Weight::from_f32(dims.to_vec(), &vec![0.25; n]),
        layout,
    )
}

/// Adds an imported layer reading `ins` on ports 0, 1, ...
fn layer(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef], outs: Vec<TensorInfo>) -> NodeId {
    let origin = g.add_origin(Origin {
        framework: Framework::Onnx,
        node_name: name.into(),
        op_type: op.name().into(),
        file: "every_op.onnx".into(),
    });
    let mut node = Node::new(name, op, outs);
    node.provenance = Provenance::imported(origin);
    node.source_attrs = vec![("note \"(a/b)*c=?\"".into(), AttrValue::Float(f32::NAN))];
    let id = g.add_node(node);
    for (port, v) in ins.iter().enumerate() {
        g.connect(*v, id, port);
    }
    id
}

fn one(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef], out: TensorInfo) -> ValueRef {
    ValueRef::new(layer(g, name, op, ins, vec![out]), 0)
}

/// Every canonical op once, on a `[N,3,8,8]` input, with a few placements set.
fn every_op() -> Graph {
    let mut g = Graph::new("every op \"(1/2)*3=?\"");
    let x = g.add_node(Node::new(
        "x",
        Op::Input { index: 0 },
        vec![nchw("x", 3, 8, 8)],
    ));
    g.inputs.push(x);
    let x = ValueRef::new(x, 0);
    let w = floats(&mut g, "conv.w", &[4, 3, 3, 3], Layout::OIHW);
    let b = floats(&mut g, "conv.b", &[4], Layout::C);
    let conv = Op::Conv(ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        activation: None,
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1; 4],
        group: 1,
        affine: None,
    });
    let c = one(&mut g, "conv", conv, &[x, w, b], nchw("conv", 4, 8, 8));
    let mut bn_ins = vec![c];
    for role in ["scale", "bias", "mean", "var"] {
        bn_ins.push(floats(&mut g, &format!("bn.{role}"), &[4], Layout::C));
    }
    let bn = one(
        &mut g,
        "bn",
        Op::BatchNorm { epsilon: 1e-5 },
        &bn_ins,
        nchw("bn", 4, 8, 8),
    );
    let relu = one(
        &mut g,
        "relu",
        Op::Unary(UnaryOp::Relu),
        &[bn],
        nchw("relu", 4, 8, 8),
    );
    let sig = one(
        &mut g,
        "sig",
        Op::Unary(UnaryOp::Sigmoid),
        &[relu],
        nchw("sig", 4, 8, 8),
    );
    let hs = Op::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    let hs = one(&mut g, "hsig", hs, &[sig], nchw("hsig", 4, 8, 8));
    let clip = Op::Clip {
        min: 0.0,
        max: f32::INFINITY,
    };
    let clip = one(&mut g, "clip", clip, &[hs], nchw("clip", 4, 8, 8));
    let id = one(
        &mut g,
        "id",
        Op::Unary(UnaryOp::Identity),
        &[clip],
        nchw("id", 4, 8, 8),
    );
    let wt = floats(&mut g, "up.w", &[4, 4, 2, 2], Layout::IOHW);
    let up = Op::ConvTranspose(ConvTransposeAttrs {
        kernel: [2, 2],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [0; 4],
        output_padding: [0, 0],
        group: 1,
        activation: None,
    });
    let up = one(&mut g, "up", up, &[clip, wt], nchw("up", 4, 16, 16));
    let resize = Op::Resize(ResizeAttrs::new(
        ResizeMode::Nearest,
        ResizeCoordinate::Asymmetric,
        ResizeNearest::Floor,
    ));
    let roi = constant(&mut g, "roi", Weight::from_f32(vec![0], &[]), Layout::Any);
    let scales = Weight::from_f32(vec![4], &[1.0, 1.0, 0.5, 0.5]);
    let scales = constant(&mut g, "scales", scales, Layout::Any);
    let down = one(
        &mut g,
        "down",
        resize,
        &[up, roi, scales],
        nchw("down", 4, 8, 8),
    );
    let k = floats(&mut g, "k", &[1, 4, 1, 1], Layout::Any);
    let mut v = one(
        &mut g,
        "add",
        Op::Binary(BinaryOp::Add),
        &[id, down],
        nchw("add", 4, 8, 8),
    );
    for (name, op) in [
        ("sub", BinaryOp::Sub),
        ("mul", BinaryOp::Mul),
        ("div", BinaryOp::Div),
    ] {
        v = one(&mut g, name, Op::Binary(op), &[v, k], nchw(name, 4, 8, 8));
    }
    let gap = one(
        &mut g,
        "gap",
        Op::GlobalAveragePool,
        &[v],
        nchw("gap", 4, 1, 1),
    );
    let scaled = one(
        &mut g,
        "scaled",
        Op::Binary(BinaryOp::Mul),
        &[v, gap],
        nchw("scaled", 4, 8, 8),
    );
    let cat = one(
        &mut g,
        "cat",
        Op::Concat { axis: 1 },
        &[scaled, id],
        nchw("cat", 8, 8, 8),
    );
    let split = Op::Split {
        axis: 1,
        sizes: SplitSizes::Explicit(vec![4, 4]),
    };
    let halves = vec![nchw("half", 4, 8, 8), nchw("half", 4, 8, 8)];
    let split = layer(&mut g, "split", split, &[cat], halves);
    let nhwc = vec![
        Dim::Symbol("N".into()),
        Dim::Known(8),
        Dim::Known(8),
        Dim::Known(4),
    ];
    let perm = Op::Transpose {
        perm: vec![0, 2, 3, 1],
    };
    let t = one(
        &mut g,
        "nhwc",
        perm,
        &[ValueRef::new(split, 0)],
        f32_info("nhwc", nhwc, Layout::Any),
    );
    let shape = constant(
        &mut g,
        "flat.shape",
        Weight::from_i64(vec![2], &[-1, 256]),
        Layout::Any,
    );
    let flat_dims = vec![Dim::Unknown, Dim::Known(256)];
    let flat = Op::Reshape { allowzero: false };
    let flat = one(
        &mut g,
        "flat",
        flat,
        &[t, shape],
        f32_info("flat", flat_dims, Layout::Any),
    );
    let custom = Op::Custom {
        domain: "temblor.ops".into(),
        name: "MyOp".into(),
        attrs: vec![(
            "gain".into(),
            AttrValue::Floats(vec![1.5, f32::NEG_INFINITY]),
        )],
    };
    let custom = one(
        &mut g,
        "my op",
        custom,
        &[ValueRef::new(split, 1)],
        nchw("my", 4, 8, 8),
    );
    let opaque = Op::Opaque {
        domain: "com.example".into(),
        op_type: "Mystery".into(),
        at: "node 'mystery'".into(),
        declared: vec![None],
    };
    let opaque = one(
        &mut g,
        "mystery",
        opaque,
        &[custom],
        f32_info("mystery", vec![Dim::Unknown; 4], Layout::Any),
    );
    g.outputs = vec![
        GraphOutput {
            name: "flat".into(),
            value: flat,
        },
        GraphOutput {
            name: "mystery".into(),
            value: opaque,
        },
    ];
    for (i, id) in g.node_ids().collect::<Vec<_>>().into_iter().enumerate() {
        if i % 3 != 0 {
            g.node_mut(id).placement = Some(Placement {
                precision: [Precision::Fp16, Precision::Int8][i % 2],
                partition: [Partition::Engine, Partition::Host][i % 2],
            });
        }
    }
    temblor_ir::validate(&g).expect("valid test graph");
    g
}

#[test]
fn views_of_every_op_open_in_netron() {
    let g = every_op();
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = g.layer_count() + g.inputs.len();
    let files: Vec<(PathBuf, usize)> = [View::Parse, View::Optimize, View::Compile]
        .into_iter()
        .map(|view| {
            let path = dir
                .path()
                .join(format!("every_op.{}.prototxt", view.name()));
            std::fs::write(&path, render(&g, view)).expect("write view");
            (path, nodes)
        })
        .collect();
    check_in_netron(&files);
}

/// Both real models compiled by the CLI: each of their three views opens in Netron with one node
/// per layer and per graph input.
#[test]
fn views_of_the_real_models_open_in_netron() {
    let dir = tempfile::tempdir().unwrap();
    let models = [
        (
            real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx"),
            "x:1x3x192x384",
        ),
        (
            real_model("picodet_layout_onnx", "layout_cdla.onnx"),
            "image:1x3x800x608",
        ),
    ];
    let mut files = Vec::new();
    for (i, (model, dims)) in models.iter().enumerate() {
        let out = dir.path().join(format!("m{i}"));
        let (code, _, err) = output(
            temblor()
                .arg("compile")
                .arg(model)
                .args(["--input", dims, "-o"])
                .arg(&out),
        );
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let inputs = report["inputs"].as_array().unwrap().len();
        for view in ["parse", "optimize", "compile"] {
            let layers = report["views"][view]["layers"].as_u64().unwrap() as usize;
            files.push((out.join(format!("{view}.prototxt")), layers + inputs));
        }
    }
    check_in_netron(&files);
}
