//! The CUDA backend: a graph runs on an NVIDIA GPU through the driver API (cudarc, loaded at run
//! time), its kernels compiled by NVRTC for the GPU found, its GEMMs through cuBLAS.
//!
//! A plan is specialized on the first run of each set of input shapes (`specialize.rs`): the
//! graph runs once through the CPU kernels, node by node, for every shape; each node is lowered
//! to GPU work or left to the host (`lower/`); and the result is laid out as segments over one
//! arena (`program.rs`). A run state owns its arena; each GPU segment is captured as a CUDA graph on
//! its first run in that state and replayed after (`driver.rs`). The same program runs on the
//! host emulator (`emulate.rs`), which compiles the same kernel sources for the CPU: the tests
//! check the whole backend against the CPU runtime on machines without a GPU.

pub(crate) mod driver;
pub(crate) mod emulate;
pub(crate) mod executor;
pub(crate) mod lower;
pub(crate) mod nvrtc;
pub(crate) mod preprocess;
pub(crate) mod program;
pub(crate) mod sources;
pub(crate) mod specialize;
pub(crate) mod toolkit;

use crate::backend::{input_specs, match_inputs, InputSpec, Observer, StepInfo, ValueView};
use crate::cpu::run_op;
use crate::{RuntimeError, Tensor, TensorData};
use executor::{DevicePtr, Executor};
use program::{Bases, Program, Segment};
use specialize::Place;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use temblor_ir::{Graph, Op, ValueRef};

/// A graph prepared for a CUDA executor.
#[derive(Debug)]
pub(crate) struct CudaPlan {
    graph: Graph,
    inputs: Vec<InputSpec>,
    /// The computing nodes, in the order they run; observers get their index in this list.
    steps: Vec<StepInfo>,
    executor: Arc<dyn Executor>,
    /// What the executor is, for reports: the GPU's name and architecture, or the emulator.
    name: String,
    /// One program per set of input shapes, made on the first run with those shapes.
    programs: Mutex<Vec<Arc<Loaded>>>,
}

/// A program and its constants on the device.
#[derive(Debug)]
struct Loaded {
    shapes: Vec<Vec<usize>>,
    program: Program,
    consts: DevicePtr,
    executor: Arc<dyn Executor>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.executor.free(self.consts);
    }
}

/// A run state: an arena per program, and the calls resolved at its addresses.
#[derive(Debug)]
pub(crate) struct CudaState {
    id: u64,
    executor: Arc<dyn Executor>,
    arenas: HashMap<usize, Arena>,
}

#[derive(Debug)]
struct Arena {
    ptr: DevicePtr,
    /// Per segment, its calls at this arena's addresses (empty for host segments).
    calls: Vec<Vec<executor::Call>>,
}

impl Drop for CudaState {
    fn drop(&mut self) {
        for (&program, arena) in &self.arenas {
            for segment in 0..arena.calls.len() {
                self.executor.forget(key(self.id, program, segment));
            }
            self.executor.free(arena.ptr);
        }
    }
}

/// The key of one segment's calls in one state, for the executor's captured graphs.
fn key(state: u64, program: usize, segment: usize) -> u64 {
    (state << 24) | ((program as u64) << 12) | segment as u64
}

impl CudaState {
    /// Always 0: a state's memory is its arenas, held from its first run to its drop, and never
    /// lent out (see [`crate::RunState::lent_bytes`]).
    pub fn lent_bytes(&self) -> usize {
        0
    }
}

impl CudaPlan {
    pub fn new(
        graph: &Graph,
        executor: Arc<dyn Executor>,
        name: String,
    ) -> Result<CudaPlan, RuntimeError> {
        if let Some(id) = graph
            .node_ids()
            .find(|&id| matches!(graph.node(id).op, Op::Loop(_) | Op::If { .. }))
        {
            return Err(RuntimeError::unsupported(format!(
                "the CUDA backend does not run control flow yet: {}",
                graph.describe(id)
            )));
        }
        let order = graph.topo_order().map_err(|n| {
            RuntimeError::internal(format!("graph has a cycle through {}", graph.describe(n)))
        })?;
        let steps = order
            .into_iter()
            .filter(|&id| !matches!(graph.node(id).op, Op::Input { .. } | Op::Constant { .. }))
            .map(|id| {
                let node = graph.node(id);
                StepInfo {
                    node: node.name.clone(),
                    op: node.op.clone(),
                    what: graph.describe(id),
                    output_names: node.outputs.iter().map(|o| o.name.clone()).collect(),
                    fused: Vec::new(),
                }
            })
            .collect();
        Ok(CudaPlan {
            graph: graph.clone(),
            inputs: input_specs(graph)?,
            steps,
            executor,
            name,
            programs: Mutex::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn steps(&self) -> &[StepInfo] {
        &self.steps
    }

    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    pub fn new_state(&self) -> CudaState {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        CudaState {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            executor: self.executor.clone(),
            arenas: HashMap::new(),
        }
    }

    /// The shapes of `inputs` in the plan's input order, which name a program.
    fn shapes(&self, inputs: &[(String, Tensor)]) -> Vec<Vec<usize>> {
        self.inputs
            .iter()
            .map(|spec| {
                inputs
                    .iter()
                    .find(|(n, _)| *n == spec.name)
                    .map(|(_, t)| t.shape.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The nodes the program for `inputs`' shapes runs on the host, `(node name, reason)`;
    /// `None` before a run of those shapes.
    pub fn host_nodes(&self, inputs: &[(String, Tensor)]) -> Option<Vec<(String, String)>> {
        let shapes = self.shapes(inputs);
        let programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        let loaded = programs.iter().find(|p| p.shapes == shapes)?;
        let spec = &loaded.program.spec;
        Some(
            spec.order
                .iter()
                .zip(&spec.places)
                .filter_map(|(&id, place)| match place {
                    Place::Host(why) => Some((self.graph.node(id).name.clone(), why.clone())),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The program for these inputs' shapes, made on first use.
    fn program(&self, inputs: &[(String, Tensor)]) -> Result<(usize, Arc<Loaded>), RuntimeError> {
        let shapes = self.shapes(inputs);
        let mut programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = programs.iter().position(|p| p.shapes == shapes) {
            return Ok((i, programs[i].clone()));
        }
        let spec = specialize::specialize(&self.graph, inputs)?;
        let program = Program::new(&self.graph, spec)?;
        let consts = self.executor.alloc(program.consts.len().max(1))?;
        self.executor.upload(consts, &program.consts)?;
        programs.push(Arc::new(Loaded {
            shapes,
            program,
            consts,
            executor: self.executor.clone(),
        }));
        Ok((programs.len() - 1, programs[programs.len() - 1].clone()))
    }

    pub fn run(
        &self,
        state: &mut CudaState,
        inputs: &[(String, Tensor)],
        mut observer: Option<&mut dyn Observer>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        match_inputs(&self.inputs, inputs)?;
        let (index, loaded) = self.program(inputs)?;
        let program = &loaded.program;
        let arena = match state.arenas.entry(index) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.arena(&loaded)?),
        };
        let spec = &program.spec;
        // The inputs as given, by value; what the host computes or downloads, owned.
        let mut given: HashMap<ValueRef, &Tensor> = HashMap::new();
        for id in self.graph.node_ids() {
            if let Op::Input { .. } = self.graph.node(id).op {
                let name = &self.graph.node(id).outputs[0].name;
                if let Some((_, t)) = inputs.iter().find(|(n, _)| n == name) {
                    given.insert(ValueRef::new(id, 0), t);
                }
            }
        }
        let mut host: HashMap<ValueRef, Tensor> = HashMap::new();
        for (s, segment) in program.segments.iter().enumerate() {
            match segment {
                Segment::Gpu {
                    uploads,
                    nodes,
                    downloads,
                } => {
                    for t in uploads {
                        let bytes = lookup(&host, &given, &spec.known, &t.value)?
                            .data
                            .to_le_bytes();
                        self.executor.upload(arena.ptr + t.offset as u64, &bytes)?;
                    }
                    match observer.as_deref_mut() {
                        None => self
                            .executor
                            .run(key(state.id, index, s), &arena.calls[s])?,
                        Some(watch) => self.run_watched(
                            nodes,
                            Bases {
                                arena: arena.ptr,
                                consts: loaded.consts,
                            },
                            watch,
                            spec,
                        )?,
                    }
                    for t in downloads {
                        let mut bytes = vec![0u8; t.bytes()];
                        self.executor
                            .download(arena.ptr + t.offset as u64, &mut bytes)?;
                        host.insert(t.value, tensor(t.dtype, &t.shape, &bytes)?);
                    }
                }
                Segment::Host(indices) => {
                    for &i in indices {
                        let id = spec.order[i];
                        let node = self.graph.node(id);
                        let reads = self.graph.inputs_of(id);
                        let ins = reads
                            .iter()
                            .map(|v| {
                                v.as_ref()
                                    .map(|v| lookup(&host, &given, &spec.known, v))
                                    .transpose()
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let refs: Vec<Option<&Tensor>> = ins;
                        let start = Instant::now();
                        let outs = run_op(&node.op, &refs, node.outputs.len())
                            .map_err(|e| e.context(&self.graph.describe(id)))?;
                        if let Some(watch) = observer.as_deref_mut() {
                            let views: Vec<Option<ValueView>> =
                                refs.iter().map(|t| t.map(ValueView::host)).collect();
                            let out_views: Vec<ValueView> =
                                outs.iter().map(ValueView::host).collect();
                            watch.step(i, &self.steps[i], &views, &out_views, start.elapsed())?;
                        }
                        for (port, t) in outs.into_iter().enumerate() {
                            host.insert(ValueRef::new(id, port), t);
                        }
                    }
                }
            }
        }
        self.graph
            .outputs
            .iter()
            .map(|o| {
                Ok((
                    o.name.clone(),
                    lookup(&host, &given, &spec.known, &o.value)?.clone(),
                ))
            })
            .collect()
    }

    /// A run state's memory for `loaded`, and its calls resolved at those addresses.
    fn arena(&self, loaded: &Loaded) -> Result<Arena, RuntimeError> {
        let ptr = self
            .executor
            .alloc(loaded.program.arena.arena_bytes.max(1))?;
        let bases = Bases {
            arena: ptr,
            consts: loaded.consts,
        };
        let calls = loaded
            .program
            .segments
            .iter()
            .map(|s| match s {
                Segment::Gpu { nodes, .. } => nodes
                    .iter()
                    .map(|n| n.resolve(bases))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.concat()),
                Segment::Host(_) => Ok(Vec::new()),
            })
            .collect::<Result<Vec<_>, _>>();
        match calls {
            Ok(calls) => Ok(Arena { ptr, calls }),
            Err(e) => {
                self.executor.free(ptr);
                Err(e)
            }
        }
    }

    /// A GPU segment node by node, each waited for and its values shown to `watch`: for
    /// profiles and layer comparisons, not for speed.
    fn run_watched(
        &self,
        nodes: &[program::NodeWork],
        bases: Bases,
        watch: &mut dyn Observer,
        spec: &specialize::Specialized,
    ) -> Result<(), RuntimeError> {
        let fetch =
            |slot: Option<program::Slot>, v: &ValueRef| -> Result<Option<Tensor>, RuntimeError> {
                let Some(slot) = slot else { return Ok(None) };
                let (dtype, shape) = &spec.types[v];
                let at = match slot {
                    program::Slot::Arena(o) => bases.arena + o as u64,
                    program::Slot::Consts(o) => bases.consts + o as u64,
                };
                let mut bytes = vec![0u8; shape.iter().product::<usize>() * dtype.size_bytes()];
                self.executor.download(at, &mut bytes)?;
                tensor(*dtype, shape, &bytes).map(Some)
            };
        for node in nodes {
            let id = spec.order[node.index];
            let calls = node.resolve(bases)?;
            let start = Instant::now();
            // Key 0: run as is, never captured.
            self.executor.run(0, &calls)?;
            let elapsed = start.elapsed();
            let ins = self.graph.inputs_of(id);
            let inputs = ins
                .iter()
                .zip(&node.bind.inputs)
                .map(|(v, slot)| match v {
                    Some(v) => fetch(*slot, v),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = node
                .bind
                .outputs
                .iter()
                .enumerate()
                .map(|(p, slot)| {
                    fetch(Some(*slot), &ValueRef::new(id, p)).map(|t| t.expect("given a slot"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<Option<ValueView>> = inputs
                .iter()
                .map(|t| t.as_ref().map(ValueView::host))
                .collect();
            let out_views: Vec<ValueView> = outputs.iter().map(ValueView::host).collect();
            watch.step(
                node.index,
                &self.steps[node.index],
                &views,
                &out_views,
                elapsed,
            )?;
        }
        Ok(())
    }
}

/// Value `v` of a run: computed or downloaded on the host, given as an input, or known before
/// the run.
fn lookup<'a>(
    host: &'a HashMap<ValueRef, Tensor>,
    given: &HashMap<ValueRef, &'a Tensor>,
    known: &'a HashMap<ValueRef, Tensor>,
    v: &ValueRef,
) -> Result<&'a Tensor, RuntimeError> {
    host.get(v)
        .or_else(|| given.get(v).copied())
        .or_else(|| known.get(v))
        .ok_or_else(|| RuntimeError::internal(format!("{v:?} is not on the host")))
}

/// A tensor from the bytes of a download.
fn tensor(dtype: temblor_ir::DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor, RuntimeError> {
    let data = TensorData::from_le_bytes(dtype, bytes).ok_or_else(|| {
        RuntimeError::internal(format!(
            "{} bytes are no {dtype} tensor of {shape:?}",
            bytes.len()
        ))
    })?;
    Ok(Tensor {
        shape: shape.to_vec(),
        data,
    })
}
