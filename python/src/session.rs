//! `temblor.Session`: a package (or a model compiled in memory) prepared once on the CPU runtime
//! and run on numpy arrays, or on photos to an answer. The plan is immutable and shared; each
//! run takes a `RunState` from a pool (made on first need, kept for the next run), so Python
//! threads run one session at once, each with the GIL released while the plan runs.

use crate::arrays::{declared, to_numpy, to_tensor};
use crate::py_error;
use clap::ValueEnum;
use numpy::{PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyNone};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use temblor::cli::answer::Reader;
use temblor::cli::run::load_graph;
use temblor_ir::{Dim, Error, Graph, Result};
use temblor_ops_lib::preprocess::Image;
use temblor_postprocess::{postprocess, Geometry, ImageResult, Kind};
use temblor_runtime::{prepare, Device, Plan, PrepareOptions, RunState, Tensor};

/// A graph input or output as Python sees it: name, dtype, shape.
type Port<'py> = (String, &'static str, Vec<Bound<'py, PyAny>>);

#[pyclass(frozen, module = "temblor._temblor")]
pub struct Session {
    path: PathBuf,
    graph: Graph,
    plan: Plan,
    states: Mutex<Vec<RunState>>,
    /// What `run --image` would be told: `--postprocess`, `--preprocess`, `--labels`.
    postprocess: Option<Kind>,
    preprocess: Option<PathBuf>,
    labels: Option<PathBuf>,
    /// How photos become inputs and outputs an answer, read on the first photo: a session that
    /// only runs arrays needs neither, and a model of no known kind has none.
    reader: OnceLock<Reader>,
}

/// A photo as `detect` takes it: a file, or decoded RGB pixels.
enum Photo {
    File(PathBuf),
    Pixels(Image),
}

impl Session {
    /// Runs `f` on a state from the pool, or a fresh one when every pooled state is in use by
    /// another thread; the state goes back to the pool for the next run.
    fn with_state<T>(&self, f: impl FnOnce(&mut RunState) -> T) -> T {
        let pooled = self.states.lock().ok().and_then(|mut s| s.pop());
        let mut state = pooled.unwrap_or_else(|| self.plan.new_state());
        let result = f(&mut state);
        if let Ok(mut states) = self.states.lock() {
            states.push(state);
        }
        result
    }

    /// The reader of photos and answers, made on first use; a failure (a model of no known
    /// kind) is not kept, so each `detect` reports it.
    fn reader(&self) -> Result<&Reader> {
        if let Some(reader) = self.reader.get() {
            return Ok(reader);
        }
        let reader = Reader::around(
            self.graph.clone(),
            &self.path,
            self.preprocess.as_deref(),
            self.postprocess,
            self.labels.as_deref(),
        )?;
        Ok(self.reader.get_or_init(|| reader))
    }

    /// One photo's answer, as `run --image` writes it into results.json.
    fn answer(&self, photo: &Photo, min_score: Option<f32>) -> Result<ImageResult> {
        let reader = self.reader()?;
        let mut how = reader.postprocess.clone();
        if let Some(s) = min_score {
            how.set_min_score(s);
        }
        let (prepared, name) = match photo {
            Photo::File(path) => (
                reader.preprocess.inputs(path, &reader.graph)?,
                path.display().to_string(),
            ),
            Photo::Pixels(image) => {
                let name = format!("array {}x{}", image.height, image.width);
                let prepared =
                    reader
                        .preprocess
                        .image_inputs(image, Path::new(&name), &reader.graph)?;
                (prepared, name)
            }
        };
        let outputs = self
            .with_state(|state| self.plan.run(state, &prepared.inputs))
            .map_err(Error::from)?;
        let geometry = Geometry {
            original: prepared.original,
            scale: prepared.scale,
        };
        let answer = postprocess(&how, &outputs, &geometry, &reader.labels)?;
        Ok(ImageResult::new(name, prepared.original, answer))
    }
}

/// A dim as Python shows it: its size, the name of a symbolic one, `None` when unknown.
fn py_dim<'py>(py: Python<'py>, d: &Dim) -> PyResult<Bound<'py, PyAny>> {
    Ok(match d {
        Dim::Known(n) => n.into_pyobject(py)?.into_any(),
        Dim::Symbol(s) => s.into_pyobject(py)?.into_any(),
        Dim::Unknown => PyNone::get(py).to_owned().into_any(),
    })
}

/// A photo argument: a path (str or os.PathLike) or an RGB uint8 array of shape (H, W, 3).
fn photo(value: &Bound<'_, PyAny>) -> PyResult<Photo> {
    if let Ok(array) = value.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        let shape = array.shape().to_vec();
        let [height, width, 3] = shape[..] else {
            return Err(PyValueError::new_err(format!(
                "an image array must be RGB uint8 of shape (height, width, 3), not {shape:?}"
            )));
        };
        let rgb = array.to_vec().map_err(|_| {
            PyValueError::new_err("an image array must be C-contiguous".to_string())
        })?;
        return Ok(Photo::Pixels(Image { width, height, rgb }));
    }
    value.extract::<PathBuf>().map(Photo::File).map_err(|_| {
        PyValueError::new_err(
            "an image is a path (str or os.PathLike) or an RGB uint8 numpy array of shape \
             (height, width, 3)",
        )
    })
}

#[pymethods]
impl Session {
    /// A package written by `compile`, or a model file compiled in memory (as `temblor run`
    /// does), prepared on `threads` CPU threads (0: one per core), whose workers spin between
    /// kernels while a run is under way when `spin` is set (as `temblor bench` has them: lower
    /// latency, every core busy for the whole run).
    #[new]
    #[pyo3(signature = (path, threads = 0, spin = false, postprocess = None, preprocess = None,
                        labels = None, device = "cpu"))]
    // One argument per Python keyword argument: PyO3 takes them this way.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        threads: usize,
        spin: bool,
        postprocess: Option<&str>,
        preprocess: Option<PathBuf>,
        labels: Option<PathBuf>,
        device: &str,
    ) -> PyResult<Session> {
        let device = match device {
            "cpu" => Device::Cpu,
            "cuda" => Device::Cuda { ordinal: 0 },
            other => {
                return Err(PyValueError::new_err(format!(
                    "device '{other}': expected 'cpu' or 'cuda'"
                )))
            }
        };
        let postprocess = postprocess
            .map(|k| {
                Kind::from_str(k, true).map_err(|_| {
                    let kinds: Vec<String> = Kind::value_variants()
                        .iter()
                        .filter_map(|k| k.to_possible_value())
                        .map(|v| v.get_name().to_string())
                        .collect();
                    PyValueError::new_err(format!(
                        "postprocess '{k}': expected one of {}",
                        kinds.join(", ")
                    ))
                })
            })
            .transpose()?;
        let (graph, plan) = py
            .detach(|| {
                let graph = load_graph(&path)?;
                let options = PrepareOptions {
                    threads,
                    spin,
                    ..Default::default()
                };
                let plan = prepare(&graph, &device, &options).map_err(Error::from)?;
                Ok::<_, Error>((graph, plan))
            })
            .map_err(py_error)?;
        Ok(Session {
            path,
            graph,
            plan,
            states: Mutex::new(Vec::new()),
            postprocess,
            preprocess,
            labels,
            reader: OnceLock::new(),
        })
    }

    /// The graph inputs: (name, dtype, shape) each, a shape's dims being sizes, names of
    /// symbolic dims, or None.
    #[getter]
    fn _inputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Port<'py>>> {
        self.plan
            .inputs()
            .iter()
            .map(|s| {
                let dims = s
                    .dims
                    .iter()
                    .map(|d| py_dim(py, d))
                    .collect::<PyResult<_>>()?;
                Ok((s.name.clone(), s.dtype.name(), dims))
            })
            .collect()
    }

    /// The graph outputs, as `_inputs` gives the inputs.
    #[getter]
    fn _outputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Port<'py>>> {
        self.graph
            .outputs
            .iter()
            .map(|o| {
                let ty = self.graph.value_type(o.value);
                let dims = ty
                    .shape
                    .dims()
                    .iter()
                    .map(|d| py_dim(py, d))
                    .collect::<PyResult<_>>()?;
                Ok((o.name.clone(), ty.dtype.name(), dims))
            })
            .collect()
    }

    /// CPU threads the plan's kernels run on.
    #[getter]
    fn threads(&self) -> usize {
        self.plan.threads()
    }

    /// The outputs named (all, in the graph's order, for None) of one run on `feed`
    /// ({input name: numpy array}), as numpy arrays.
    #[pyo3(signature = (output_names, feed))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        output_names: Option<Vec<String>>,
        feed: &Bound<'py, PyDict>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let names: Vec<&str> = self.graph.outputs.iter().map(|o| o.name.as_str()).collect();
        if let Some(wanted) = &output_names {
            for (i, w) in wanted.iter().enumerate() {
                if !names.contains(&w.as_str()) {
                    return Err(PyValueError::new_err(format!(
                        "the model has no output named '{w}'; its outputs are: {}",
                        names.join(", ")
                    )));
                }
                if wanted[..i].contains(w) {
                    return Err(PyValueError::new_err(format!(
                        "output '{w}' is named twice"
                    )));
                }
            }
        }
        let specs = self.plan.inputs();
        let mut inputs = Vec::with_capacity(feed.len());
        for (key, value) in feed.iter() {
            let name: String = key
                .extract()
                .map_err(|_| PyValueError::new_err("input names must be str"))?;
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                let all: Vec<String> = specs
                    .iter()
                    .map(|s| format!("{} {}", s.name, declared(s.dtype, &s.dims)))
                    .collect();
                return Err(PyValueError::new_err(format!(
                    "the model has no input named '{name}'; its inputs are: {}",
                    all.join("; ")
                )));
            };
            inputs.push((name, to_tensor(spec, &value)?));
        }
        let outputs = py
            .detach(|| self.with_state(|state| self.plan.run(state, &inputs)))
            .map_err(|e| py_error(e.into()))?;
        let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(|(_, t)| Some(t)).collect();
        let picked: Vec<usize> = match &output_names {
            Some(wanted) => wanted
                .iter()
                .filter_map(|w| names.iter().position(|n| n == w))
                .collect(),
            None => (0..outputs.len()).collect(),
        };
        // Each index is picked once (names were checked above), so every take finds its tensor.
        picked
            .into_iter()
            .filter_map(|i| outputs[i].take())
            .map(|t| to_numpy(py, t))
            .collect()
    }

    /// The answers for `images` (paths, or RGB uint8 arrays of shape (H, W, 3)), as JSON text:
    /// a list of what `run --image` writes for each photo in results.json's `images`.
    #[pyo3(signature = (images, min_score = None))]
    fn _answers(
        &self,
        py: Python<'_>,
        images: Vec<Bound<'_, PyAny>>,
        min_score: Option<f32>,
    ) -> PyResult<String> {
        let photos = images.iter().map(photo).collect::<PyResult<Vec<_>>>()?;
        let results = py
            .detach(|| {
                photos
                    .iter()
                    .map(|p| self.answer(p, min_score))
                    .collect::<Result<Vec<_>>>()
            })
            .map_err(py_error)?;
        serde_json::to_string(&results).map_err(|e| {
            py_error(Error::internal(format!(
                "cannot serialize the results: {e}"
            )))
        })
    }
}
