//! [`CpuPlan`]: the graph flattened into steps over numbered value slots, in topological order.
//! Constants are converted (and convolution weights packed) once when the plan is built; a computed
//! value's buffer returns to the plan's pool ([`super::buffers`]) as soon as its last reader has
//! run, so peak memory is the widest cut of the graph, not its sum, and later steps and runs reuse
//! it.

use super::args::Args;
use super::buffers::Buffers;
use super::conv::pack_weights;
use super::conv_gemm::PackedWeights;
use super::execute::execute;
use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use temblor_ir::{DType, Dim, Graph, Op, ValueRef};

/// An executable CPU plan for one graph.
#[derive(Debug)]
pub struct CpuPlan {
    constants: Vec<(usize, Tensor)>,
    inputs: Vec<InputSpec>,
    steps: Vec<Step>,
    outputs: Vec<(String, usize)>,
    /// Per slot: how many step inputs and graph outputs read it.
    uses: Vec<usize>,
    /// Kernels run inside this pool, so their rayon iterators and GEMMs use its threads.
    pool: Arc<ThreadPool>,
    /// Buffers of freed values, reused by later steps and later runs.
    buffers: Arc<Buffers>,
}

#[derive(Debug)]
struct InputSpec {
    name: String,
    slot: usize,
    dtype: DType,
    dims: Vec<Dim>,
}

#[derive(Debug)]
struct Step {
    info: StepInfo,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    /// A convolution's constant weight, packed for its GEMM once.
    packed: Option<PackedWeights>,
}

/// One step of a plan as an [`Observer`] sees it: the node it runs.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// The node's name in the graph.
    pub node: String,
    pub op: Op,
    /// The node as [`Graph::describe`] names it, for errors.
    pub what: String,
    /// The names of the values the step computes, by output port.
    pub output_names: Vec<String>,
}

/// Watches a plan run step by step: profiling times steps, calibration and layer comparison read
/// the values each step computes.
pub trait Observer: Send {
    /// Called after step `index` has run, with the inputs it read and the outputs it made.
    fn step(
        &mut self,
        index: usize,
        step: &StepInfo,
        inputs: &[Option<&Tensor>],
        outputs: &[Tensor],
        elapsed: Duration,
    );
}

/// The observer of an unobserved run.
struct Unobserved;

impl Observer for Unobserved {
    fn step(&mut self, _: usize, _: &StepInfo, _: &[Option<&Tensor>], _: &[Tensor], _: Duration) {}
}

/// A slot's value while the plan runs: constants and graph inputs are borrowed, not copied.
enum Value<'a> {
    Empty,
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl Value<'_> {
    fn get(&self) -> Option<&Tensor> {
        match self {
            Value::Empty => None,
            Value::Borrowed(t) => Some(t),
            Value::Owned(t) => Some(t),
        }
    }
}

/// Keeps the pool's other workers awake while a plan runs, taking work as soon as a kernel
/// offers it. A plan runs a few hundred short parallel kernels; a worker that fell asleep
/// between two of them is woken through the OS for each, which cost PicoDet at 2 threads more
/// than a tenth of its time. onnxruntime's pool spins the same way.
struct Spinning(Arc<AtomicBool>);

impl Spinning {
    /// Spins on every other worker of the current pool until dropped.
    fn start() -> Spinning {
        let running = Arc::new(AtomicBool::new(true));
        let owner = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let running = Arc::clone(&running);
            rayon::spawn(move || {
                // The plan's own thread may pick this job up while it waits inside a kernel:
                // spinning there would wait for itself.
                if rayon::current_thread_index() == owner {
                    return;
                }
                while running.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        Spinning(running)
    }
}

impl Drop for Spinning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A pool of `threads` workers; 0 means one per available core.
fn thread_pool(threads: usize) -> Result<Arc<ThreadPool>, RuntimeError> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("temblor-cpu-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| RuntimeError::internal(format!("cannot start {threads} CPU threads: {e}")))
}

impl CpuPlan {
    /// A plan for `g` that runs on every available core; see [`CpuPlan::with_threads`].
    pub fn new(g: &Graph) -> Result<CpuPlan, RuntimeError> {
        let order = g.topo_order().map_err(|n| {
            RuntimeError::internal(format!(
                "graph '{}' has a cycle through {}",
                g.name,
                g.describe(n)
            ))
        })?;
        let mut slot_of: HashMap<ValueRef, usize> = HashMap::new();
        let mut plan = CpuPlan {
            constants: Vec::new(),
            inputs: Vec::new(),
            steps: Vec::new(),
            outputs: Vec::new(),
            uses: Vec::new(),
            pool: thread_pool(0)?,
            buffers: Arc::default(),
        };
        let mut unsupported = Vec::new();
        for &id in &order {
            let node = g.node(id);
            let outputs: Vec<usize> = (0..node.outputs.len())
                .map(|port| {
                    let slot = plan.uses.len();
                    plan.uses.push(0);
                    slot_of.insert(ValueRef::new(id, port), slot);
                    slot
                })
                .collect();
            let single = || {
                outputs
                    .first()
                    .copied()
                    .filter(|_| outputs.len() == 1)
                    .ok_or_else(|| {
                        RuntimeError::internal(format!(
                            "{} must have exactly one output",
                            g.describe(id)
                        ))
                    })
            };
            match &node.op {
                Op::Input { .. } => {
                    single()?;
                    let ty = &node.outputs[0].ty;
                    plan.inputs.push(InputSpec {
                        name: node.outputs[0].name.clone(),
                        slot: single()?,
                        dtype: ty.dtype,
                        dims: ty.shape.dims().to_vec(),
                    });
                }
                Op::Constant { weight } => {
                    let w = g.weights.get(*weight).ok_or_else(|| {
                        RuntimeError::internal(format!(
                            "{} refers to missing weight {}",
                            g.describe(id),
                            weight.0
                        ))
                    })?;
                    if w.is_shape_only() {
                        return Err(RuntimeError::bad_input(format!(
                            "{} has no values: the model was given without its parameters \
                             (graph only), so it can be compiled and viewed but not run",
                            g.describe(id)
                        )));
                    }
                    let t = Tensor::from_weight(w).map_err(|e| e.context(&g.describe(id)))?;
                    plan.constants.push((single()?, t));
                }
                Op::Custom { .. } if super::library::resolve(&node.op).is_err() => {
                    unsupported.push(g.describe(id))
                }
                Op::Opaque { .. } => unsupported.push(g.describe(id)),
                op => {
                    let mut inputs = Vec::new();
                    for v in g.inputs_of(id) {
                        let slot = match v {
                            Some(v) => Some(*slot_of.get(&v).ok_or_else(|| {
                                RuntimeError::internal(format!(
                                    "{} reads output {} of {}, which does not exist",
                                    g.describe(id),
                                    v.port,
                                    g.describe(v.node)
                                ))
                            })?),
                            None => None,
                        };
                        if let Some(s) = slot {
                            plan.uses[s] += 1;
                        }
                        inputs.push(slot);
                    }
                    let packed = match op {
                        Op::Conv(a) => inputs
                            .get(1)
                            .copied()
                            .flatten()
                            .and_then(|s| plan.constants.iter().find(|(c, _)| *c == s))
                            .and_then(|(_, w)| pack_weights(a, w)),
                        _ => None,
                    };
                    plan.steps.push(Step {
                        info: StepInfo {
                            node: node.name.clone(),
                            op: op.clone(),
                            what: g.describe(id),
                            output_names: node.outputs.iter().map(|o| o.name.clone()).collect(),
                        },
                        inputs,
                        outputs,
                        packed,
                    });
                }
            }
        }
        if !unsupported.is_empty() {
            return Err(RuntimeError::unsupported(format!(
                "the CPU runtime has no kernel for {} node(s) of graph '{}': {}",
                unsupported.len(),
                g.name,
                unsupported.join(", ")
            )));
        }
        for o in &g.outputs {
            let slot = *slot_of.get(&o.value).ok_or_else(|| {
                RuntimeError::internal(format!(
                    "graph output '{}' reads a value that does not exist",
                    o.name
                ))
            })?;
            plan.uses[slot] += 1;
            plan.outputs.push((o.name.clone(), slot));
        }
        Ok(plan)
    }

    /// The same plan running on `threads` threads (0 = one per available core).
    pub fn with_threads(self, threads: usize) -> Result<CpuPlan, RuntimeError> {
        Ok(CpuPlan {
            pool: thread_pool(threads)?,
            ..self
        })
    }

    /// How many threads the kernels of this plan run on.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The steps the plan runs, in order.
    pub fn steps(&self) -> impl ExactSizeIterator<Item = &StepInfo> {
        self.steps.iter().map(|s| &s.info)
    }

    /// Runs the plan on named inputs and returns the graph outputs, in order, by name.
    pub fn run(&self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_observed(inputs, &mut Unobserved)
    }

    /// [`CpuPlan::run`], showing `observer` every step as it completes.
    pub fn run_observed(
        &self,
        inputs: &[(String, Tensor)],
        observer: &mut dyn Observer,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.pool.install(|| {
            let _spinning = Spinning::start();
            self.buffers.scope(|| self.run_steps(inputs, observer))
        })
    }

    fn run_steps(
        &self,
        inputs: &[(String, Tensor)],
        observer: &mut dyn Observer,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let mut values: Vec<Value> = (0..self.uses.len()).map(|_| Value::Empty).collect();
        for (slot, t) in &self.constants {
            values[*slot] = Value::Borrowed(t);
        }
        for (spec, t) in self.match_inputs(inputs)? {
            values[spec.slot] = Value::Borrowed(t);
        }
        let mut left = self.uses.clone();
        // Bytes of the values computed and not yet freed.
        let mut live = 0;
        for (index, step) in self.steps.iter().enumerate() {
            let what = &step.info.what;
            let ins = step
                .inputs
                .iter()
                .map(|s| match s {
                    Some(s) => values[*s].get().map(Some).ok_or_else(|| {
                        RuntimeError::internal(format!("slot {s} read after it was freed"))
                    }),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.context(what))?;
            let args = Args {
                ins: &ins,
                outputs: step.outputs.len(),
                packed: step.packed.as_ref(),
            };
            let start = Instant::now();
            let outs = execute(&step.info.op, &args).map_err(|e| e.context(what))?;
            let elapsed = start.elapsed();
            if outs.len() != step.outputs.len() {
                return Err(RuntimeError::internal(format!(
                    "{what}: the kernel made {} outputs, the node declares {}",
                    outs.len(),
                    step.outputs.len()
                )));
            }
            observer.step(index, &step.info, &ins, &outs, elapsed);
            for (&slot, t) in step.outputs.iter().zip(outs) {
                if left[slot] > 0 {
                    live += size_bytes(&t);
                    values[slot] = Value::Owned(t);
                } else {
                    self.buffers.recycle(t);
                }
            }
            self.buffers.allow(live);
            for &s in step.inputs.iter().flatten() {
                left[s] -= 1;
                if left[s] == 0 {
                    if let Value::Owned(t) = std::mem::replace(&mut values[s], Value::Empty) {
                        live -= size_bytes(&t);
                        self.buffers.recycle(t);
                    }
                }
            }
        }
        let mut result = Vec::with_capacity(self.outputs.len());
        for (name, slot) in &self.outputs {
            // The caller gets a copy of exactly its size; a pooled buffer stays with the plan,
            // which would otherwise allocate (and fault in) a new one on every run.
            let t = values[*slot].get().cloned().ok_or_else(|| {
                RuntimeError::internal(format!("graph output '{name}' was never computed"))
            })?;
            left[*slot] -= 1;
            if left[*slot] == 0 {
                if let Value::Owned(v) = std::mem::replace(&mut values[*slot], Value::Empty) {
                    self.buffers.recycle(v);
                }
            }
            result.push((name.clone(), t));
        }
        Ok(result)
    }

    /// Pairs each graph input with the tensor given for it, checking names, dtypes and shapes.
    fn match_inputs<'a>(
        &'a self,
        given: &'a [(String, Tensor)],
    ) -> Result<Vec<(&'a InputSpec, &'a Tensor)>, RuntimeError> {
        let expected = || {
            let names: Vec<&str> = self.inputs.iter().map(|s| s.name.as_str()).collect();
            format!("the graph's inputs are [{}]", names.join(", "))
        };
        let mut found: Vec<Option<&Tensor>> = vec![None; self.inputs.len()];
        for (name, t) in given {
            let i = self
                .inputs
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| {
                    RuntimeError::bad_input(format!("unknown input '{name}'; {}", expected()))
                })?;
            if found[i].replace(t).is_some() {
                return Err(RuntimeError::bad_input(format!(
                    "input '{name}' is given twice"
                )));
            }
            check_input(&self.inputs[i], t)?;
        }
        let missing: Vec<&str> = self
            .inputs
            .iter()
            .zip(&found)
            .filter(|(_, t)| t.is_none())
            .map(|(s, _)| s.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(RuntimeError::bad_input(format!(
                "missing input(s) [{}]; {}",
                missing.join(", "),
                expected()
            )));
        }
        Ok(self
            .inputs
            .iter()
            .zip(found.into_iter().flatten())
            .collect())
    }
}

/// The memory a value holds: a pooled f32 buffer may be larger than its tensor.
fn size_bytes(t: &Tensor) -> usize {
    match &t.data {
        TensorData::F32(v) => v.capacity() * size_of::<f32>(),
        _ => t.len() * t.dtype().size_bytes(),
    }
}

fn check_input(spec: &InputSpec, t: &Tensor) -> Result<(), RuntimeError> {
    let declared = || {
        let dims: Vec<String> = spec.dims.iter().map(|d| d.to_string()).collect();
        format!("{} [{}]", spec.dtype, dims.join(", "))
    };
    let fits = t.shape.len() == spec.dims.len()
        && t.shape
            .iter()
            .zip(&spec.dims)
            .all(|(&n, d)| d.known().is_none_or(|k| k == n));
    if t.dtype() != spec.dtype || !fits {
        return Err(RuntimeError::bad_input(format!(
            "input '{}' is {} {:?}, the graph expects {}",
            spec.name,
            t.dtype(),
            t.shape,
            declared()
        )));
    }
    let count: usize = t.shape.iter().product();
    if t.len() != count {
        return Err(RuntimeError::bad_input(format!(
            "input '{}' has shape {:?} ({count} elements) but holds {} elements",
            spec.name,
            t.shape,
            t.len()
        )));
    }
    Ok(())
}
