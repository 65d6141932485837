//! The ONNX backend test suite's cases (`model.onnx` beside `test_data_set_N/{input,output}_K.pb`)
//! and what the conformance runner asks of a model file: its op types, and whether its inputs
//! and outputs fit in `.npy` files.

use super::proto::TensorProto;
use super::tensor::TensorReader;
use super::{import, nonempty_graph, ops, proto, read, tensor};
use std::collections::HashSet;
use std::path::Path;
use temblor_ir::{DType, Error, Graph, Result, Weight};

/// How a case's inputs reach the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Every graph input is fed at run time, as onnxruntime's backend test runner feeds it.
    RunTime,
    /// The inputs that feed operands temblor needs as constants (Dropout's training mode,
    /// Resize scales, ...) become initializers; the others are fed at run time.
    Initializers,
}

/// One case of the ONNX backend test suite, read from its directory.
pub struct Case {
    /// The model; with [`Binding::Initializers`], the inputs that feed constant-only operands
    /// are bound as weights.
    pub graph: Graph,
    /// The remaining graph inputs, in order, with the case's values.
    pub inputs: Vec<(String, Weight)>,
    /// The expected graph outputs, in order.
    pub outputs: Vec<(String, Weight)>,
}

/// Reads `dir/model.onnx` and `dir/<data_set>/{input,output}_N.pb`. Test inputs are graph
/// inputs in order, fed at run time or, with [`Binding::Initializers`], bound as initializers
/// where the IR needs them as constants.
pub(crate) fn load_case(dir: &Path, data_set: &str, binding: Binding) -> Result<Case> {
    let path = dir.join("model.onnx");
    let file = path.display().to_string();
    let model = read::model(&path, &file)?;
    let opset = read::default_opset(&model, &file)?;
    let mut proto = nonempty_graph(&model, &file)?.clone();
    // The data files of a sequence or optional value are not TensorProtos; read as one they
    // would give nonsense, so such a case is refused by what it holds.
    if let Some(vi) = proto
        .input
        .iter()
        .chain(&proto.output)
        .find(|vi| vi.r#type.as_ref().and_then(|t| t.value.as_ref()).is_none())
    {
        return Err(Error::bad_input(format!(
            "{file}: graph value '{}' is not a tensor (a sequence, map or optional value); \
             temblor's IR holds tensors only",
            vi.name
        )));
    }
    let data = dir.join(data_set);
    let read_all = |prefix: &str| -> Result<Vec<TensorProto>> {
        let mut out = Vec::new();
        while let Some(t) = read::tensor_file(&data.join(format!("{prefix}_{}.pb", out.len())))? {
            out.push(t);
        }
        Ok(out)
    };
    let given = read_all("input")?;
    let expected = read_all("output")?;
    let initialized: HashSet<&str> = proto.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<String> = proto
        .input
        .iter()
        .map(|vi| vi.name.clone())
        .filter(|n| !initialized.contains(n.as_str()))
        .collect();
    if given.len() != input_names.len() || expected.len() != proto.output.len() {
        return Err(Error::bad_input(format!(
            "{}: {} inputs and {} outputs for a model with {} and {}",
            data.display(),
            given.len(),
            expected.len(),
            input_names.len(),
            proto.output.len()
        )));
    }
    let bound: HashSet<String> = proto
        .node
        .iter()
        .filter(|_| binding == Binding::Initializers)
        .flat_map(|n| {
            ops::constant_inputs(&n.op_type)
                .iter()
                .filter_map(|&p| n.input.get(p).cloned())
        })
        .collect();
    let mut reader = TensorReader::new(&data);
    let mut inputs = Vec::new();
    for (name, mut t) in input_names.into_iter().zip(given) {
        t.name = name.clone();
        if bound.contains(&name) {
            proto.initializer.push(t);
        } else {
            inputs.push((name, reader.weight(&t).map_err(Error::bad_input)?));
        }
    }
    let mut outputs = Vec::new();
    for (vi, mut t) in proto.output.iter().zip(expected) {
        t.name = vi.name.clone();
        outputs.push((
            vi.name.clone(),
            reader.weight(&t).map_err(Error::bad_input)?,
        ));
    }
    let graph = import(&proto, file, opset, &path, &[])?;
    Ok(Case {
        graph,
        inputs,
        outputs,
    })
}

pub(crate) fn op_types(path: &Path) -> Result<Vec<String>> {
    let file = path.display().to_string();
    let model = read::model(path, &file)?;
    let mut out: Vec<String> = Vec::new();
    for n in nonempty_graph(&model, &file)?.node.iter() {
        if !out.contains(&n.op_type) {
            out.push(n.op_type.clone());
        }
    }
    Ok(out)
}

/// Whether every graph input and output is a tensor of a dtype a `.npy` file holds, so that the
/// case can be run as a user runs a model (`temblor run --input NAME=FILE.npy`).
pub(crate) fn npy_io(path: &Path) -> Result<bool> {
    let file = path.display().to_string();
    let model = read::model(path, &file)?;
    let g = nonempty_graph(&model, &file)?;
    Ok(g.input.iter().chain(&g.output).all(|vi| {
        matches!(
            vi.r#type.as_ref().and_then(|t| t.value.as_ref()),
            // numpy has no bfloat16.
            Some(proto::type_proto::Value::TensorType(tt))
                if tensor::dtype(tt.elem_type).is_some_and(|d| d != DType::BF16)
        )
    }))
}
