//! The inputs of a timed command (`bench`, `profile`): the model's declared inputs, `--input`
//! overrides (`NAME:DIMS` or `NAME=FILE.npy`), and the tensors a run gets (given data, or seeded
//! random values that any model accepts).

use std::path::{Path, PathBuf};
use temblor_ir::{package, DType, Dim, Error, Graph, Result};
use temblor_pipeline::{Compiled, Options, StaticDims, VerifyMode};
use temblor_runtime::{bf16, f16, Tensor, TensorData};
use temblor_tools::npy;

/// A model given on the command line: a package's graph, or a model file yet to be compiled
/// for its input shapes; with the inputs it declares.
pub struct Model {
    pub package: Option<Graph>,
    pub declared: Vec<Declared>,
    /// Whether `--input` may replace sizes the model declares static (`--override-shapes`).
    pub statics: StaticDims,
}

impl Model {
    pub fn open(path: &Path) -> Result<Model> {
        let package = package::is_package(path)
            .then(|| package::load(path))
            .transpose()?;
        let declared = match &package {
            Some(g) => declared_inputs(g),
            None => declared_inputs(&temblor_pipeline::import(path, &[])?),
        };
        Ok(Model {
            package,
            declared,
            statics: StaticDims::Keep,
        })
    }

    /// The model at `path` and its `--input` specs, parsed and checked against its inputs.
    /// With `override_shapes`, `--input` may replace sizes a model file declares static; a
    /// package's shapes were fixed when it was compiled.
    pub fn open_with(
        path: &Path,
        specs: &[String],
        override_shapes: bool,
    ) -> Result<(Model, Vec<(String, Given)>)> {
        let given = specs
            .iter()
            .map(|s| parse_given(s))
            .collect::<Result<Vec<_>>>()?;
        let mut model = Model::open(path)?;
        if override_shapes {
            if model.package.is_some() {
                return Err(override_of_package(path));
            }
            model.statics = StaticDims::Override;
        }
        check_names(&model.declared, &given)?;
        Ok((model, given))
    }
}

/// `--override-shapes` given with a package, which cannot take it.
pub fn override_of_package(path: &Path) -> Error {
    Error::usage(format!(
        "--override-shapes: {} is a package, whose shapes were fixed when it was compiled; \
         compile the model with --override-shapes instead",
        path.display()
    ))
}

/// What `--input` says about one input.
pub enum Given {
    Dims(Vec<usize>),
    Data { file: PathBuf, tensor: Tensor },
}

/// A graph input as the model (or package) declares it.
pub struct Declared {
    name: String,
    dtype: DType,
    dims: Vec<Dim>,
}

/// One input of one row: its final shape and where its values come from.
pub struct RowInput<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Option<(&'a Path, &'a Tensor)>,
}

pub fn parse_given(spec: &str) -> Result<(String, Given)> {
    let Some((name, file)) = spec.split_once('=') else {
        let (name, dims) = super::parse_input_dims(spec)?;
        return Ok((name, Given::Dims(dims)));
    };
    if name.is_empty() || file.is_empty() {
        return Err(Error::usage(format!(
            "--input '{spec}': expected NAME=FILE.npy or NAME:DIMS"
        )));
    }
    let file = PathBuf::from(file);
    let tensor = npy::read(&file)?;
    Ok((name.to_string(), Given::Data { file, tensor }))
}

fn declared_inputs(g: &Graph) -> Vec<Declared> {
    g.inputs
        .iter()
        .filter_map(|&id| g.node(id).outputs.first())
        .map(|o| Declared {
            name: o.name.clone(),
            dtype: o.ty.dtype,
            dims: o.ty.shape.dims().to_vec(),
        })
        .collect()
}

pub fn check_names(declared: &[Declared], given: &[(String, Given)]) -> Result<()> {
    for (i, (name, _)) in given.iter().enumerate() {
        if !declared.iter().any(|d| &d.name == name) {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::usage(format!(
                "the model has no input named '{name}'; its inputs are: {}",
                names.join(", ")
            )));
        }
        if given[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::usage(format!(
                "input '{name}' is given twice; give NAME:DIMS or NAME=FILE.npy once"
            )));
        }
    }
    Ok(())
}

fn show_dims(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Every input's shape and data for one row: the model's dims, overridden by `--input`, with the
/// batch axis set when `batch` is given, and otherwise an open batch the user did not give set
/// to 1, with one warning naming those inputs of `source`.
pub fn row_inputs<'a>(
    source: &Path,
    declared: &'a [Declared],
    given: &'a [(String, Given)],
    batch: Option<usize>,
    statics: StaticDims,
) -> Result<Vec<RowInput<'a>>> {
    let mut row = Vec::with_capacity(declared.len());
    let mut defaulted = Vec::new();
    for d in declared {
        let given = given.iter().find(|(n, _)| n == &d.name).map(|(_, g)| g);
        let mut dims: Vec<Option<usize>> = match given {
            Some(Given::Dims(dims)) => dims.iter().copied().map(Some).collect(),
            Some(Given::Data { tensor, .. }) => tensor.shape.iter().copied().map(Some).collect(),
            None => d.dims.iter().map(Dim::known).collect(),
        };
        if dims.len() != d.dims.len() {
            return Err(Error::usage(format!(
                "input '{}' has rank {} {}, but --input gives {} dims",
                d.name,
                d.dims.len(),
                show_dims(&d.dims),
                dims.len()
            )));
        }
        for (axis, (want, declared)) in dims.iter().zip(&d.dims).enumerate() {
            if let (Some(w), Some(k), StaticDims::Keep) = (want, declared.known(), statics) {
                if *w != k {
                    return Err(Error::usage(format!(
                        "input '{}' {} has a fixed size {k} on axis {axis}, but {w} was given \
                         (--override-shapes lets it change)",
                        d.name,
                        show_dims(&d.dims)
                    )));
                }
            }
        }
        if batch.is_none() && given.is_none() && temblor_infer::has_open_batch(&d.dims) {
            dims[0] = Some(1);
            defaulted.push(format!("'{}' {}", d.name, show_dims(&d.dims)));
        }
        if let (Some(b), Some(first)) = (batch, dims.first_mut()) {
            match d.dims[0] {
                Dim::Known(1) if b > 1 => {
                    return Err(Error::usage(format!(
                        "--batch {b}: input '{}' {} fixes its batch (axis 0) to 1, so this \
                         model runs at batch 1 only",
                        d.name,
                        show_dims(&d.dims)
                    )))
                }
                Dim::Known(_) => {}
                _ => *first = Some(b),
            }
        }
        let Some(shape) = dims.iter().copied().collect::<Option<Vec<usize>>>() else {
            return Err(Error::usage(format!(
                "input '{}' has dynamic dims {}: fix them with --input {}:DIMS (e.g. {}:{})",
                d.name,
                show_dims(&d.dims),
                d.name,
                d.name,
                example_dims(&d.dims)
            )));
        };
        let data = match given {
            Some(Given::Data { file, tensor }) => {
                if tensor.dtype() != d.dtype {
                    return Err(Error::usage(format!(
                        "{}: {} data for input '{}', which is {}",
                        file.display(),
                        tensor.dtype(),
                        d.name,
                        d.dtype
                    )));
                }
                Some((file.as_path(), tensor))
            }
            _ => None,
        };
        row.push(RowInput {
            name: &d.name,
            dtype: d.dtype,
            shape,
            data,
        });
    }
    if !defaulted.is_empty() {
        eprintln!("{}", temblor_pipeline::batch_warning(source, &defaulted));
    }
    Ok(row)
}

/// The declared dims with every unknown one shown as 1 (a batch) or 640 (a spatial extent).
fn example_dims(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .enumerate()
        .map(|(axis, d)| match (d.known(), axis) {
            (Some(k), _) => k.to_string(),
            (None, 0) => "1".into(),
            (None, _) => "640".into(),
        })
        .collect();
    dims.join("x")
}

/// The row's tensors: given data (repeated along axis 0 when it holds one item of a larger
/// batch) or seeded random values.
pub fn materialize(inputs: &[RowInput]) -> Result<Vec<(String, Tensor)>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    inputs
        .iter()
        .map(|i| {
            let tensor = match i.data {
                Some((file, t)) => fit_batch(file, i.name, t, &i.shape)?,
                None => random_tensor(i.dtype, &i.shape, &mut rng),
            };
            Ok((i.name.to_string(), tensor))
        })
        .collect()
}

fn fit_batch(file: &Path, name: &str, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape == shape {
        return Ok(t.clone());
    }
    let one_item = t.shape.first() == Some(&1) && t.shape[1..] == shape[1..];
    if !one_item {
        return Err(Error::usage(format!(
            "{}: input '{name}' has shape {:?}, the row needs {shape:?}",
            file.display(),
            t.shape
        )));
    }
    let n = shape[0];
    macro_rules! repeat {
        ($($v:ident),*) => {
            match &t.data {
                $(TensorData::$v(d) => TensorData::$v(d.repeat(n)),)*
            }
        };
    }
    Ok(Tensor {
        shape: shape.to_vec(),
        data: repeat!(F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool),
    })
}

/// The xorshift generator the tests use: the same inputs on every run and machine.
struct Rng(u64);

impl Rng {
    /// A value in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Values that any model accepts without a domain error: images (rank 3 and up) in [-1, 1),
/// small float inputs such as scale factors in [0.5, 2), integers (sizes, counts) in 1..=4.
fn random_tensor(dtype: DType, shape: &[usize], rng: &mut Rng) -> Tensor {
    let (lo, hi) = match dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 if shape.len() >= 3 => (-1.0, 1.0),
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => (0.5, 2.0),
        DType::Bool => (0.0, 2.0),
        _ => (1.0, 5.0),
    };
    let count: usize = shape.iter().product();
    let v: Vec<f64> = (0..count).map(|_| lo + (hi - lo) * rng.unit()).collect();
    let ints = |v: &[f64]| v.iter().map(|x| x.floor() as i64).collect::<Vec<i64>>();
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
        DType::BF16 => TensorData::BF16(v.iter().map(|&x| bf16::from_f64(x)).collect()),
        DType::F64 => TensorData::F64(v),
        DType::I8 => TensorData::I8(ints(&v).iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(ints(&v).iter().map(|&x| x as u8).collect()),
        DType::I16 => TensorData::I16(ints(&v).iter().map(|&x| x as i16).collect()),
        DType::U16 => TensorData::U16(ints(&v).iter().map(|&x| x as u16).collect()),
        DType::I32 => TensorData::I32(ints(&v).iter().map(|&x| x as i32).collect()),
        DType::U32 => TensorData::U32(ints(&v).iter().map(|&x| x as u32).collect()),
        DType::I64 => TensorData::I64(ints(&v)),
        DType::U64 => TensorData::U64(ints(&v).iter().map(|&x| x as u64).collect()),
        DType::Bool => TensorData::Bool(ints(&v).iter().map(|&x| x == 1).collect()),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// The model file compiled for the row's input shapes, unverified: a timed command measures the
/// model, `compile` checks it.
pub fn compile(model: &Path, inputs: &[RowInput], statics: StaticDims) -> Result<Compiled> {
    let options = Options {
        static_dims: statics,
        input_dims: inputs
            .iter()
            .map(|i| (i.name.to_string(), i.shape.clone()))
            .collect(),
        verify: VerifyMode::Off,
        ..Options::default()
    };
    temblor_pipeline::compile(model, &options)
}
