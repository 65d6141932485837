//! [`CpuPlan`]: the graph flattened into steps over numbered value slots, in topological order.
//! Constants are converted, convolution weights packed, ops_lib operators resolved and the
//! instruction set chosen once, when the plan is prepared. A computed value's buffer returns to
//! the run state's pool ([`super::buffers`]) as soon as its last reader has run, so peak memory
//! is the widest cut of the graph, not its sum, and later steps and runs reuse it.

mod rewrite;

use rewrite::Rewrites;

use super::args::{Args, Lowered};
use super::buffers::Buffers;
use super::control::{self, Control};
use super::conv::pack_weights;
use super::conv_transpose_phases::phase_weights;
use super::execute::{computes_in_f32, execute};
use super::fully_connected;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::matmul_packed::PackedRight;
use super::shape_ops;
use super::spin::Spinning;
use crate::backend::{
    match_inputs, plan_memory, InputSpec, MemoryPlan, Observer, StepInfo, ValueView,
};
use crate::{PrepareOptions, RuntimeError, Tensor, TensorData};
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use temblor_ir::{Graph, NodeId, Op, TensorType, ValueRef};

/// An executable CPU plan for one graph; see [`crate::Plan`].
#[derive(Debug)]
pub(crate) struct CpuPlan {
    constants: Vec<(usize, Tensor)>,
    inputs: Vec<InputSpec>,
    /// The slot of each input, by position in `inputs`.
    input_slots: Vec<usize>,
    steps: Vec<Step>,
    /// What observers see of `steps`, by index.
    infos: Vec<StepInfo>,
    outputs: Vec<(String, usize)>,
    /// The declared type of each graph output, in order.
    output_types: Vec<TensorType>,
    /// Per slot: how many step inputs and graph outputs read it.
    uses: Vec<usize>,
    /// Kernels run inside this pool, so their rayon iterators and GEMMs use its threads; the
    /// plans of loop and conditional bodies share their enclosing plan's.
    pool: Arc<ThreadPool>,
    isa: Isa,
    /// Whether idle workers spin through a run ([`PrepareOptions::spin`]).
    spin: bool,
    /// The static memory plan of the computed values, when all their sizes are static.
    memory: Option<MemoryPlan>,
}

/// The memory of one run: buffers of freed values, reused by later steps and later runs.
#[derive(Debug, Default)]
pub(crate) struct CpuState {
    buffers: Arc<Buffers>,
}

impl CpuState {
    pub fn lent_bytes(&self) -> usize {
        self.buffers.lent_bytes()
    }
}

#[derive(Debug)]
struct Step {
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    lowered: Option<Lowered>,
    /// How the step stores its output in bytes, when only int8 layers read it
    /// ([`CpuPlan::bytes_between_layers`]).
    bytes: Option<Quantizer>,
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

/// A pool of `threads` workers, 0 meaning one per available core, which flush denormals
/// ([`super::denormals`]).
pub(super) fn thread_pool(threads: usize) -> Result<ThreadPool, RuntimeError> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("temblor-cpu-{i}"))
        .start_handler(|_| super::denormals::flush_on_this_thread())
        .build()
        .map_err(|e| RuntimeError::internal(format!("cannot start {threads} CPU threads: {e}")))
}

impl CpuPlan {
    pub fn new(g: &Graph, options: &PrepareOptions) -> Result<CpuPlan, RuntimeError> {
        let pool = Arc::new(thread_pool(options.threads)?);
        let rewrites = Rewrites {
            int8: options.int8,
            fuse: !options.every_value,
        };
        CpuPlan::prepare(g, pool, options.spin, rewrites)
    }

    fn prepare(
        g: &Graph,
        pool: Arc<ThreadPool>,
        spin: bool,
        rewrites: Rewrites,
    ) -> Result<CpuPlan, RuntimeError> {
        let order = g.topo_order().map_err(|n| {
            RuntimeError::internal(format!(
                "graph '{}' has a cycle through {}",
                g.name,
                g.describe(n)
            ))
        })?;
        let mut slot_of: HashMap<ValueRef, usize> = HashMap::new();
        let isa = Isa::detect();
        let mut plan = CpuPlan {
            constants: Vec::new(),
            inputs: Vec::new(),
            input_slots: Vec::new(),
            steps: Vec::new(),
            infos: Vec::new(),
            outputs: Vec::new(),
            output_types: Vec::new(),
            uses: Vec::new(),
            pool,
            isa,
            spin,
            memory: plan_memory(g),
        };
        let mut unsupported = Vec::new();
        // The f32 copy of each half constant a half layer reads, by the constant's slot.
        let mut widened = HashMap::new();
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
                        dtype: ty.dtype,
                        dims: ty.shape.dims().to_vec(),
                    });
                    plan.input_slots.push(single()?);
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
                op => {
                    let (sources, rewritten) = rewrite::inputs(g, id, rewrites, isa);
                    let mut inputs = Vec::new();
                    for v in sources {
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
                        inputs.push(slot);
                    }
                    if let Op::DequantizeLinear { .. } = op {
                        if let Some(t) = plan.fold(op, &inputs) {
                            plan.constants
                                .push((single()?, t.map_err(|e| e.context(&g.describe(id)))?));
                            continue;
                        }
                    }
                    if computes_in_f32(op) && rewrite::reads_half(g, id) {
                        plan.widen_half_constants(&mut inputs, &mut widened);
                    }
                    for s in inputs.iter().flatten() {
                        plan.uses[*s] += 1;
                    }
                    // A convolution's weight or a MatMul's right operand, when it is a constant
                    // of the plan.
                    let constant_weight = inputs
                        .get(1)
                        .copied()
                        .flatten()
                        .and_then(|s| plan.constants.iter().find(|(c, _)| *c == s))
                        .map(|(_, w)| w);
                    let absorbed = matches!(op, Op::MatMul)
                        && rewrites.fuse
                        && fully_connected::absorbs(g, id, isa);
                    let lowered = match op {
                        _ if rewritten.is_some() => rewritten,
                        Op::MatMul if absorbed => None,
                        Op::Conv(a) => constant_weight
                            .and_then(|w| pack_weights(a, w, isa, static_dims(g, id)))
                            .map(Lowered::ConvWeights),
                        Op::MatMul => constant_weight
                            .and_then(|b| PackedRight::new(b, isa))
                            .map(Lowered::MatMulRight),
                        Op::ConvTranspose(a) => constant_weight
                            .and_then(|w| phase_weights(a, w, isa))
                            .map(Lowered::ConvTransposeWeights),
                        Op::Custom { .. } | Op::Opaque { .. } => {
                            unsupported.push(g.describe(id));
                            continue;
                        }
                        Op::Loop(a) => {
                            let body = CpuPlan::prepare(
                                g.body(a.body),
                                plan.pool.clone(),
                                false,
                                rewrites,
                            )?;
                            Some(Lowered::Control(Box::new(Control::Loop {
                                body,
                                carried: a.carried,
                            })))
                        }
                        Op::If {
                            then_branch,
                            else_branch,
                        } => {
                            let branch =
                                |b| CpuPlan::prepare(g.body(b), plan.pool.clone(), false, rewrites);
                            Some(Lowered::Control(Box::new(Control::If {
                                then: branch(*then_branch)?,
                                otherwise: Box::new(branch(*else_branch)?),
                            })))
                        }
                        _ => None,
                    };
                    if absorbed || matches!(lowered, Some(Lowered::MatMulRight(_))) {
                        // The step holds its right operand, packed, or the fully connected step
                        // of its chain will and this one never runs. A constant that nothing
                        // else reads is freed now, before the next one is packed: freed at the
                        // end, every weight of a ViT-S was held twice at once (peak 1.3x), and
                        // packed for both steps, ViT-S's fully connected weights twice (peak
                        // RSS 331 MiB against 248).
                        if let Some(s) = inputs.get_mut(1).and_then(Option::take) {
                            plan.uses[s] -= 1;
                            let b = g.input(id, 1);
                            let only_reader = b.is_some_and(|b| {
                                g.consumers(b).len() == 1 && !g.outputs.iter().any(|o| o.value == b)
                            });
                            if only_reader {
                                plan.constants.retain(|(c, _)| *c != s);
                            }
                        }
                    }
                    plan.infos.push(StepInfo {
                        node: node.name.clone(),
                        op: op.clone(),
                        what: g.describe(id),
                        output_names: node.outputs.iter().map(|o| o.name.clone()).collect(),
                        fused: match &lowered {
                            Some(Lowered::ExpandDepthwise(f)) => f.fused(),
                            Some(Lowered::FullyConnected(f)) => f.fused(),
                            _ => Vec::new(),
                        },
                    });
                    plan.steps.push(Step {
                        inputs,
                        outputs,
                        lowered,
                        bytes: None,
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
            plan.output_types.push(g.value_type(o.value).clone());
        }
        plan.drop_unread();
        if rewrites.fuse {
            plan.bytes_between_layers();
        }
        Ok(plan)
    }

    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    pub fn output_type(&self, k: usize) -> Option<&TensorType> {
        self.output_types.get(k)
    }

    /// Runs a body plan on its inputs in order, inside the run (and pool) of the plan holding
    /// it.
    pub(crate) fn run_positional(
        &self,
        buffers: &Buffers,
        inputs: &[&Tensor],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        if inputs.len() != self.inputs.len() {
            return Err(RuntimeError::internal(format!(
                "a body given {} inputs for its {}",
                inputs.len(),
                self.inputs.len()
            )));
        }
        self.run_steps(buffers, inputs, None)
    }

    /// How many threads the kernels of this plan run on.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn steps(&self) -> &[StepInfo] {
        &self.infos
    }

    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The static memory plan, when every computed value has a static size.
    pub fn memory(&self) -> Option<&MemoryPlan> {
        self.memory.as_ref()
    }

    /// A state whose pool may hold the plan's peak from the first run on; a plan with dynamic
    /// sizes learns its bound as it runs.
    pub fn new_state(&self) -> CpuState {
        let state = CpuState::default();
        if let Some(memory) = &self.memory {
            state.buffers.allow(memory.arena_bytes);
        }
        state
    }

    /// Runs the plan on named inputs in `state`, showing `observer` (if any) every step as it
    /// completes, and returns the graph outputs, in order, by name.
    pub fn run(
        &self,
        state: &mut CpuState,
        inputs: &[(String, Tensor)],
        observer: Option<&mut dyn Observer>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.pool.install(|| {
            let _spinning = self.spin.then(Spinning::start);
            let buffers = &state.buffers;
            let outputs = buffers.scope(|| {
                let matched = self.match_inputs(inputs)?;
                self.run_steps(buffers, &matched, observer)
            });
            buffers.end_run();
            outputs
        })
    }

    fn run_steps(
        &self,
        buffers: &Buffers,
        inputs: &[&Tensor],
        mut observer: Option<&mut dyn Observer>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let mut values: Vec<Value> = (0..self.uses.len()).map(|_| Value::Empty).collect();
        for (slot, t) in &self.constants {
            values[*slot] = Value::Borrowed(t);
        }
        for (slot, t) in self.input_slots.iter().zip(inputs) {
            values[*slot] = Value::Borrowed(t);
        }
        let mut left = self.uses.clone();
        // An observer that reads values sees each as the graph types it, never in bytes, and
        // each step's inputs as they were.
        let unread = observer.as_ref().is_none_or(|o| !o.reads_values());
        // Bytes of the values computed and not yet freed.
        let mut live = 0;
        for (index, (step, info)) in self.steps.iter().zip(&self.infos).enumerate() {
            let what = &info.what;
            let moved = unread
                .then(|| moved_input(&info.op, step, &left, &mut values))
                .flatten();
            let was_moved = moved.is_some();
            let start = Instant::now();
            let outs = match moved {
                // A view (Reshape and kin) whose input no later step reads takes that input's
                // buffer: a copy per Reshape was 1% of YOLOv8n's int8 plan.
                Some(mut t) => {
                    live -= size_bytes(&t);
                    let second = step.inputs.get(1).copied().flatten();
                    let second = second.and_then(|s| values[s].get());
                    t.shape = shape_ops::view_shape(&info.op, &t.shape, second)
                        .map_err(|e| e.context(what))?;
                    vec![t]
                }
                None => {
                    let ins = step_inputs(step, &values, None).map_err(|e| e.context(what))?;
                    let args = Args {
                        ins: &ins,
                        outputs: step.outputs.len(),
                        isa: self.isa,
                        lowered: step.lowered.as_ref(),
                        bytes: step.bytes.filter(|_| unread),
                    };
                    match step.lowered.as_ref() {
                        Some(Lowered::Control(c)) => control::run(c, &ins, buffers),
                        _ => execute(&info.op, &args),
                    }
                    .map_err(|e| e.context(what))?
                }
            };
            let elapsed = start.elapsed();
            if outs.len() != step.outputs.len() {
                return Err(RuntimeError::internal(format!(
                    "{what}: the kernel made {} outputs, the node declares {}",
                    outs.len(),
                    step.outputs.len()
                )));
            }
            if let Some(observer) = observer.as_mut() {
                // A moved input is shown as the output that took its buffer, to an observer
                // that does not read values.
                let moved = was_moved.then(|| &outs[0]);
                let ins = step_inputs(step, &values, moved).map_err(|e| e.context(what))?;
                let ins: Vec<_> = ins.iter().map(|t| t.map(ValueView::host)).collect();
                let outs: Vec<_> = outs.iter().map(ValueView::host).collect();
                observer
                    .step(index, info, &ins, &outs, elapsed)
                    .map_err(|e| e.context(what))?;
            }
            for (&slot, t) in step.outputs.iter().zip(outs) {
                if left[slot] > 0 {
                    live += size_bytes(&t);
                    values[slot] = Value::Owned(t);
                } else {
                    buffers.recycle(t);
                }
            }
            buffers.allow(live);
            for &s in step.inputs.iter().flatten() {
                left[s] -= 1;
                if left[s] == 0 {
                    if let Value::Owned(t) = std::mem::replace(&mut values[s], Value::Empty) {
                        live -= size_bytes(&t);
                        buffers.recycle(t);
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
                    buffers.recycle(v);
                }
            }
            result.push((name.clone(), t));
        }
        Ok(result)
    }

    /// The tensor given for each graph input, in order, checking names, dtypes and shapes.
    fn match_inputs<'a>(
        &self,
        given: &'a [(String, Tensor)],
    ) -> Result<Vec<&'a Tensor>, RuntimeError> {
        match_inputs(&self.inputs, given)
    }
}

/// The value of view `op`'s first input ([`shape_ops::is_view`]) taken out of its slot, when
/// this step is its last reader and the run owns it (a constant or a graph input is borrowed).
fn moved_input(op: &Op, step: &Step, left: &[usize], values: &mut [Value]) -> Option<Tensor> {
    let s = (*step.inputs.first()?).filter(|&s| shape_ops::is_view(op) && left[s] == 1)?;
    match std::mem::replace(&mut values[s], Value::Empty) {
        Value::Owned(t) => Some(t),
        other => {
            values[s] = other;
            None
        }
    }
}

/// The tensors of `step`'s inputs, the first being `first` where given.
fn step_inputs<'a>(
    step: &Step,
    values: &'a [Value],
    first: Option<&'a Tensor>,
) -> Result<Vec<Option<&'a Tensor>>, RuntimeError> {
    step.inputs
        .iter()
        .enumerate()
        .map(|(i, s)| match (s, first) {
            (Some(_), Some(t)) if i == 0 => Ok(Some(t)),
            (Some(s), _) => values[*s]
                .get()
                .map(Some)
                .ok_or_else(|| RuntimeError::internal(format!("slot {s} read after it was freed"))),
            (None, _) => Ok(None),
        })
        .collect()
}

/// The memory a value holds: a pooled buffer may be larger than its tensor.
/// The dims of node `id`'s first input, when it has four and every one is known.
fn static_dims(g: &Graph, id: NodeId) -> Option<[usize; 4]> {
    let dims = g.value_type(g.input(id, 0)?).shape.known()?;
    dims.try_into().ok()
}

fn size_bytes(t: &Tensor) -> usize {
    match &t.data {
        TensorData::F32(v) => v.capacity() * size_of::<f32>(),
        TensorData::F16(v) => v.capacity() * size_of::<crate::f16>(),
        TensorData::BF16(v) => v.capacity() * size_of::<crate::bf16>(),
        _ => t.len() * t.dtype().size_bytes(),
    }
}
