//! Shared test support: seeded data, single-op graphs run on the CPU plan, and onnxruntime as
//! the reference (through tests/scripts/run_onnx_op.py).

#![allow(dead_code)]

pub mod graph;

use std::path::PathBuf;
use std::process::Command;
use temblor_ir::{
    DType, Graph, GraphOutput, Node, Op, Shape, TensorInfo, TensorType, ValueRef, Weight,
};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor, TensorData};

/// xorshift64*: seeded, so every run sees the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::f32(shape.to_vec(), (0..n).map(|_| self.f32()).collect())
    }
}

pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "element counts differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (g as f64 - w as f64).powi(2);
        den += (w as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// Equal shapes and, for f32, relative L2 error below 1e-5; other dtypes exactly. `Err` says
/// how they differ.
pub fn check_close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    match (&got.data, &want.data) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            let e = rel_l2(g, w);
            if e < 1e-5 {
                Ok(())
            } else {
                Err(format!("relative L2 error {e:e}"))
            }
        }
        (g, w) if g == w => Ok(()),
        _ => Err("values differ".into()),
    }
}

pub fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    if let Err(e) = check_close(got, want) {
        panic!("{what}: {e}");
    }
}

/// How a single-op graph gets one operand.
pub enum Arg {
    Input(Tensor),
    Const(Tensor),
    Absent,
}

fn weight_of(t: &Tensor) -> Weight {
    match &t.data {
        TensorData::F32(v) => Weight::from_f32(t.shape.clone(), v),
        TensorData::I64(v) => Weight::from_i64(t.shape.clone(), v),
        other => panic!("no weight helper for {:?}", other.dtype()),
    }
}

fn info(name: &str, dtype: DType, shape: &[usize]) -> TensorInfo {
    TensorInfo {
        name: name.to_string(),
        ty: TensorType::new(dtype, Shape::from_known(shape)),
    }
}

/// A graph with one `op` node over `args` (inputs named in0, in1, ...) and `outputs` outputs.
pub fn single_op_graph(op: Op, args: &[Arg], outputs: usize) -> Graph {
    let mut g = Graph::new("single_op");
    let mut ports = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let name = format!("in{i}");
        let id = match a {
            Arg::Input(t) => {
                let index = g.inputs.len();
                let id = g.add_node(Node::new(
                    &name,
                    Op::Input { index },
                    vec![info(&name, t.dtype(), &t.shape)],
                ));
                g.inputs.push(id);
                id
            }
            Arg::Const(t) => {
                let weight = g.weights.add(weight_of(t));
                g.add_node(Node::new(
                    &name,
                    Op::Constant { weight },
                    vec![info(&name, t.dtype(), &t.shape)],
                ))
            }
            Arg::Absent => continue,
        };
        ports.push((id, i));
    }
    let outs = (0..outputs)
        .map(|i| info(&format!("out{i}"), DType::F32, &[]))
        .collect();
    let node = g.add_node(Node::new("op", op, outs));
    for (id, port) in ports {
        g.connect(ValueRef::new(id, 0), node, port);
    }
    for i in 0..outputs {
        g.outputs.push(GraphOutput {
            name: format!("y{i}"),
            value: ValueRef::new(node, i),
        });
    }
    g
}

/// Runs `op` over `args` on the CPU plan.
pub fn run_temblor(op: Op, args: &[Arg], outputs: usize) -> Vec<Tensor> {
    let g = single_op_graph(op, args, outputs);
    let feeds: Vec<(String, Tensor)> = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Arg::Input(t) => Some((format!("in{i}"), t.clone())),
            _ => None,
        })
        .collect();
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).expect("plan builds");
    let out = plan.run_once(&feeds).expect("plan runs");
    for (i, (name, _)) in out.iter().enumerate() {
        assert_eq!(name, &format!("y{i}"));
    }
    out.into_iter().map(|(_, t)| t).collect()
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("TEMBLOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/temblor/venv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "the onnxruntime reference needs a Python venv with onnx and onnxruntime at {} \
         (set TEMBLOR_VENV); these tests do not skip without it",
        py.display()
    );
    py
}

fn bytes_of(t: &Tensor) -> Vec<u8> {
    match &t.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        other => panic!("no file writer for {:?}", other.dtype()),
    }
}

fn tensor_from_file(dir: &std::path::Path, i: usize) -> Tensor {
    let meta = std::fs::read_to_string(dir.join(format!("out{i}.txt"))).expect("output meta");
    let mut parts = meta.split_whitespace();
    let dtype = parts.next().expect("dtype");
    let shape: Vec<usize> = parts.map(|p| p.parse().expect("extent")).collect();
    let bytes = std::fs::read(dir.join(format!("out{i}.bin"))).expect("output data");
    match dtype {
        "float32" => Tensor::f32(
            shape,
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "int64" => Tensor::i64(
            shape,
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        other => panic!("no file reader for {other}"),
    }
}

/// An ONNX operand: a graph input, an initializer, or omitted.
pub enum OrtArg<'a> {
    Feed(&'a Tensor),
    Init(Tensor),
    Absent,
}

/// One single-op ONNX model for onnxruntime: `attrs` is a JSON object of ONNX attributes.
pub struct OrtCase<'a> {
    pub op_type: &'a str,
    pub opset: u32,
    pub attrs: String,
    pub args: Vec<OrtArg<'a>>,
    pub outputs: usize,
}

/// Runs one ONNX op on onnxruntime; `tag` names the scratch directory.
pub fn run_ort(
    tag: &str,
    op_type: &str,
    opset: u32,
    attrs: &str,
    args: Vec<OrtArg>,
    outputs: usize,
) -> Vec<Tensor> {
    let case = OrtCase {
        op_type,
        opset,
        attrs: attrs.to_string(),
        args,
        outputs,
    };
    run_ort_many(tag, &[case]).remove(0)
}

/// Runs every case in one Python process; returns each case's outputs.
pub fn run_ort_many(tag: &str, cases: &[OrtCase]) -> Vec<Vec<Tensor>> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ort-{tag}"));
    let _ = std::fs::remove_dir_all(&root);
    let dirs: Vec<PathBuf> = (0..cases.len())
        .map(|k| root.join(format!("case{k}")))
        .collect();
    for (case, dir) in cases.iter().zip(&dirs) {
        write_case(case, dir);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/run_onnx_op.py");
    let status = Command::new(python())
        .arg(&script)
        .args(&dirs)
        .status()
        .expect("python starts");
    assert!(status.success(), "onnxruntime reference failed for {tag}");
    cases
        .iter()
        .zip(&dirs)
        .map(|(case, dir)| {
            (0..case.outputs)
                .map(|i| tensor_from_file(dir, i))
                .collect()
        })
        .collect()
}

fn write_case(case: &OrtCase, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("scratch dir");
    let mut inputs = Vec::new();
    for (i, a) in case.args.iter().enumerate() {
        let (t, init) = match a {
            OrtArg::Feed(t) => (*t, false),
            OrtArg::Init(t) => (t, true),
            OrtArg::Absent => {
                inputs.push(r#"{"name": ""}"#.to_string());
                continue;
            }
        };
        let name = format!("in{i}");
        std::fs::write(dir.join(format!("{name}.bin")), bytes_of(t)).expect("write input");
        inputs.push(format!(
            r#"{{"name": "{name}", "dtype": "{}", "shape": {:?}, "initializer": {init}}}"#,
            t.dtype().name(),
            t.shape
        ));
    }
    let outs: Vec<String> = (0..case.outputs)
        .map(|i| format!(r#"{{"name": "out{i}", "dtype": "float32"}}"#))
        .collect();
    let spec = format!(
        r#"{{"op": "{}", "opset": {}, "attrs": {}, "inputs": [{}], "outputs": [{}]}}"#,
        case.op_type,
        case.opset,
        case.attrs,
        inputs.join(", "),
        outs.join(", ")
    );
    std::fs::write(dir.join("spec.json"), spec).expect("write spec");
}
