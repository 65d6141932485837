//! Loading the Paddle reference cases written by scripts/ops_lib_refs.py.

use std::path::{Path, PathBuf};
use temblor_ir::{AttrValue, DType, Shape, TensorType};
use temblor_ops_lib::{LibData, LibSlice, LibTensor, LibView};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ops_lib")
}

/// One case: the op type, its attributes as the frontend would pass them, the inputs by
/// parameter (None where an optional one is omitted) and Paddle's outputs in order.
pub struct Case {
    pub name: String,
    pub op: String,
    pub attrs: Vec<(String, AttrValue)>,
    pub input_names: Vec<Option<String>>,
    pub inputs: Vec<Option<LibTensor>>,
    pub output_names: Vec<(String, usize)>,
    pub outputs: Vec<LibTensor>,
}

pub fn load_case(name: &str) -> Case {
    let dir = data_dir().join(name);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let attrs = meta["attrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let (n, kind, v) = (a[0].as_str().unwrap(), a[1].as_str().unwrap(), &a[2]);
            let value = match kind {
                "int" => AttrValue::Int(v.as_i64().unwrap()),
                "bool" => AttrValue::Int(i64::from(v.as_bool().unwrap())),
                "float" => AttrValue::Float(v.as_f64().unwrap() as f32),
                "ints" => AttrValue::Ints(
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64().unwrap())
                        .collect(),
                ),
                other => panic!("{name}: unknown attribute kind {other}"),
            };
            (n.to_string(), value)
        })
        .collect();
    let input_names: Vec<Option<String>> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect();
    let inputs = input_names
        .iter()
        .map(|n| {
            n.as_ref()
                .map(|n| load_npy(&dir.join(format!("in_{n}.npy"))))
        })
        .collect();
    let output_names: Vec<(String, usize)> = meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o[0].as_str().unwrap().to_string(),
                o[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let mut outputs = Vec::new();
    for (n, count) in &output_names {
        if *count == 1 && dir.join(format!("out_{n}.npy")).exists() {
            outputs.push(load_npy(&dir.join(format!("out_{n}.npy"))));
        } else {
            for i in 0..*count {
                outputs.push(load_npy(&dir.join(format!("out_{n}_{i}.npy"))));
            }
        }
    }
    Case {
        name: name.to_string(),
        op: meta["op"].as_str().unwrap().to_string(),
        attrs,
        input_names,
        inputs,
        output_names,
        outputs,
    }
}

/// All case folders whose name starts with `prefix`.
pub fn cases(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no reference cases named {prefix}*");
    names
}

fn load_npy(path: &Path) -> LibTensor {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let dims: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => panic!("{}: unexpected dtype {other:?}", path.display()),
    };
    let data = match descr.as_str() {
        "<f4" => LibData::F32(npy.into_vec().unwrap()),
        "<i4" => LibData::I32(npy.into_vec().unwrap()),
        "<i8" => LibData::I64(npy.into_vec().unwrap()),
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    LibTensor { dims, data }
}

pub fn view(t: &LibTensor) -> LibView<'_> {
    let data = match &t.data {
        LibData::F32(v) => LibSlice::F32(v),
        LibData::I32(v) => LibSlice::I32(v),
        LibData::I64(v) => LibSlice::I64(v),
    };
    LibView {
        dims: &t.dims,
        data,
    }
}

pub fn tensor_type(t: &LibTensor) -> TensorType {
    let dtype = match t.data {
        LibData::F32(_) => DType::F32,
        LibData::I32(_) => DType::I32,
        LibData::I64(_) => DType::I64,
    };
    TensorType::new(dtype, Shape::from_known(&t.dims))
}

/// Compares one output: same extents and dtype, integers exactly, floats to 1e-5 relative
/// (with a 1e-6 floor for values near zero).
pub fn assert_close(case: &str, what: &str, got: &LibTensor, want: &LibTensor) {
    assert_eq!(got.dims, want.dims, "{case}: {what} dims");
    match (&got.data, &want.data) {
        (LibData::F32(g), LibData::F32(w)) => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                let tol = 1e-5 * b.abs().max(a.abs()) + 1e-6;
                assert!(
                    (a - b).abs() <= tol,
                    "{case}: {what}[{i}] is {a}, Paddle gives {b}"
                );
            }
        }
        (LibData::I32(g), LibData::I32(w)) => assert_eq!(g, w, "{case}: {what}"),
        (LibData::I64(g), LibData::I64(w)) => assert_eq!(g, w, "{case}: {what}"),
        (g, w) => panic!("{case}: {what} dtype differs: got {g:?}, Paddle gives {w:?}"),
    }
}
