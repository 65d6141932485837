//! A specialized graph laid out for a device: segments of GPU work between the host's nodes,
//! each value's place (one arena, planned like the CPU's static memory plan, and one block of
//! constants), and what crosses between host and device. Plain data, resolved into calls with
//! addresses per run state ([`Program::resolve`]).

use super::executor::{Call, DevicePtr, GemmCall, KernelCall};
use super::lower::{Arg, At, Buf, Lowering, Work};
use super::specialize::{Place, Specialized};
use crate::backend::{Lifetime, MemoryPlan};
use crate::RuntimeError;
use std::collections::{HashMap, HashSet};
use temblor_ir::{DType, Graph, NodeId, ValueRef};

/// Constants are aligned like allocations, so any of them may be read as any type.
const CONST_ALIGN: usize = 256;

/// Where a buffer lives: `bytes` into the arena or into the constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Arena(usize),
    Consts(usize),
}

/// The slots one node's work reads and writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bind {
    pub inputs: Vec<Option<Slot>>,
    pub outputs: Vec<Slot>,
    pub scratch: Vec<Slot>,
    pub derived: Vec<Slot>,
}

/// One GPU node's work.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeWork {
    /// Its position in [`Specialized::order`].
    pub index: usize,
    pub works: Vec<Work>,
    pub bind: Bind,
}

/// A value copied between host and arena.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Transfer {
    pub value: ValueRef,
    pub offset: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Transfer {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_bytes()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Segment {
    /// Uploads, then the nodes' work in order, then downloads.
    Gpu {
        uploads: Vec<Transfer>,
        nodes: Vec<NodeWork>,
        downloads: Vec<Transfer>,
    },
    /// Nodes run on the host by the CPU kernels, by position in [`Specialized::order`].
    Host(Vec<usize>),
}

/// A specialized graph laid out for a device.
#[derive(Debug)]
pub(crate) struct Program {
    pub spec: Specialized,
    pub segments: Vec<Segment>,
    pub arena: MemoryPlan,
    /// The constants the GPU reads, laid out as `Slot::Consts` offsets say.
    pub consts: Vec<u8>,
}

/// A specialized graph's values as the layout asks about them.
struct Values<'a> {
    graph: &'a Graph,
    spec: &'a Specialized,
    /// Each computing node's position in `spec.order`.
    position: HashMap<NodeId, usize>,
    outputs: HashSet<ValueRef>,
}

impl Values<'_> {
    fn on_gpu(&self, i: usize) -> bool {
        matches!(self.spec.places[i], Place::Gpu { .. })
    }

    /// The value whose memory `v` is: an alias's input's, through chains of aliases.
    fn root(&self, mut v: ValueRef) -> ValueRef {
        while let Some(&i) = self.position.get(&v.node) {
            let Place::Gpu {
                lowering: Lowering::Alias { input },
                ..
            } = &self.spec.places[i]
            else {
                break;
            };
            match self.graph.input(v.node, *input) {
                Some(source) => v = source,
                None => break,
            }
        }
        v
    }

    fn type_of(&self, v: &ValueRef) -> Result<&(DType, Vec<usize>), RuntimeError> {
        self.spec
            .types
            .get(v)
            .ok_or_else(|| RuntimeError::internal(format!("{v:?} has no type")))
    }

    fn bytes_of(&self, v: &ValueRef) -> Result<usize, RuntimeError> {
        let (dtype, shape) = self.type_of(v)?;
        Ok(shape.iter().product::<usize>() * dtype.size_bytes())
    }

    /// The step that writes `v`: 0 for a graph input.
    fn produced_at(&self, v: &ValueRef) -> usize {
        self.position.get(&v.node).copied().unwrap_or(0)
    }

    /// Whether `v` is written on the host (a graph input, or a host node's output).
    fn host_made(&self, v: &ValueRef) -> bool {
        !self.position.get(&v.node).is_some_and(|&j| self.on_gpu(j))
    }

    /// Whether `v` must come back to the host: a host node reads it, or the graph outputs it.
    fn wanted_on_host(&self, v: ValueRef) -> bool {
        self.outputs.contains(&v)
            || self
                .graph
                .consumers(v)
                .iter()
                .any(|(c, _)| self.position.get(c).is_some_and(|&j| !self.on_gpu(j)))
    }

    /// Runs of GPU nodes and runs of host nodes, by position; known nodes do not run.
    fn runs(&self) -> Vec<(bool, Vec<usize>)> {
        let mut runs: Vec<(bool, Vec<usize>)> = Vec::new();
        for (i, place) in self.spec.places.iter().enumerate() {
            let gpu = match place {
                Place::Known => continue,
                Place::Gpu { .. } => true,
                Place::Host(_) => false,
            };
            match runs.last_mut() {
                Some((g, nodes)) if *g == gpu => nodes.push(i),
                _ => runs.push((gpu, vec![i])),
            }
        }
        runs
    }

    /// The arena: each value the GPU writes or reads (by root) alive from its writing to its
    /// last reading (to its segment's end where it is downloaded), and each scratch buffer for
    /// its node's step. Returns the plan, each value's offset, and each (node, scratch)'s.
    fn arena(&self, runs: &[(bool, Vec<usize>)]) -> Result<Arena, RuntimeError> {
        let (graph, spec) = (self.graph, self.spec);
        let end = spec.order.len();
        let segment_end: HashMap<usize, usize> = runs
            .iter()
            .flat_map(|(_, nodes)| {
                let last = *nodes.last().expect("runs are not empty");
                nodes.iter().map(move |&i| (i, last))
            })
            .collect();
        let mut lives: HashMap<ValueRef, Lifetime> = HashMap::new();
        let mut widen = |v: ValueRef, first: usize, last: usize, bytes: usize| {
            let life = lives.entry(v).or_insert(Lifetime { bytes, first, last });
            life.first = life.first.min(first);
            life.last = life.last.max(last);
        };
        for (i, &id) in spec.order.iter().enumerate() {
            if !self.on_gpu(i) {
                continue;
            }
            for port in 0..graph.node(id).outputs.len() {
                let v = ValueRef::new(id, port);
                let mut last = i;
                for (c, _) in graph.consumers(v) {
                    last = last.max(self.position.get(&c).copied().unwrap_or(end));
                }
                if self.wanted_on_host(v) {
                    last = last.max(segment_end[&i]);
                }
                let r = self.root(v);
                widen(r, self.produced_at(&r), last, self.bytes_of(&r)?);
            }
            // What this GPU node reads from the host: uploaded, alive from its production.
            for v in graph.inputs_of(id).into_iter().flatten() {
                let r = self.root(v);
                if !spec.known.contains_key(&v) && self.host_made(&r) {
                    widen(r, self.produced_at(&r), i, self.bytes_of(&r)?);
                }
            }
        }
        let mut values: Vec<(ValueRef, Lifetime)> = lives.into_iter().collect();
        values.sort_by_key(|(v, _)| (v.node, v.port));
        let mut lifetimes: Vec<Lifetime> = values.iter().map(|(_, l)| *l).collect();
        let mut scratch = HashMap::new();
        for (i, place) in spec.places.iter().enumerate() {
            if let Place::Gpu { scratch: sizes, .. } = place {
                for (k, &bytes) in sizes.iter().enumerate() {
                    scratch.insert((i, k), lifetimes.len());
                    lifetimes.push(Lifetime {
                        bytes,
                        first: i,
                        last: i,
                    });
                }
            }
        }
        let plan = MemoryPlan::new(&lifetimes);
        let values = values
            .iter()
            .enumerate()
            .map(|(k, (v, _))| (*v, plan.offsets[k]))
            .collect();
        let scratch = scratch
            .into_iter()
            .map(|(at, k)| (at, plan.offsets[k]))
            .collect();
        Ok(Arena {
            plan,
            values,
            scratch,
        })
    }
}

/// The arena as [`Values::arena`] lays it out.
struct Arena {
    plan: MemoryPlan,
    /// Each value's offset, by root.
    values: HashMap<ValueRef, usize>,
    /// Each scratch buffer's offset, by (node position, scratch index).
    scratch: HashMap<(usize, usize), usize>,
}

/// The constants the GPU reads: known values by value, and what lowerings derived.
#[derive(Default)]
struct Consts {
    bytes: Vec<u8>,
    of: HashMap<ValueRef, usize>,
}

impl Consts {
    fn push(&mut self, bytes: &[u8]) -> usize {
        let at = self.bytes.len().div_ceil(CONST_ALIGN) * CONST_ALIGN;
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(bytes);
        at
    }
}

impl Program {
    pub fn new(graph: &Graph, spec: Specialized) -> Result<Program, RuntimeError> {
        let values = Values {
            graph,
            spec: &spec,
            position: spec
                .order
                .iter()
                .enumerate()
                .map(|(i, &n)| (n, i))
                .collect(),
            outputs: graph.outputs.iter().map(|o| o.value).collect(),
        };
        let runs = values.runs();
        let arena = values.arena(&runs)?;
        let mut consts = Consts::default();
        let slot = |v: &ValueRef, consts: &Consts| -> Result<Slot, RuntimeError> {
            if let Some(&c) = consts.of.get(v) {
                return Ok(Slot::Consts(c));
            }
            arena
                .values
                .get(&values.root(*v))
                .map(|&o| Slot::Arena(o))
                .ok_or_else(|| RuntimeError::internal(format!("{v:?} has no place")))
        };
        let transfer = |v: ValueRef| -> Result<Transfer, RuntimeError> {
            let (dtype, shape) = values.type_of(&v)?;
            let offset = *arena
                .values
                .get(&values.root(v))
                .ok_or_else(|| RuntimeError::internal(format!("{v:?} is not in the arena")))?;
            Ok(Transfer {
                value: v,
                offset,
                dtype: *dtype,
                shape: shape.clone(),
            })
        };

        let mut uploaded: HashSet<ValueRef> = HashSet::new();
        let mut segments = Vec::with_capacity(runs.len());
        for (gpu, indices) in runs {
            if !gpu {
                segments.push(Segment::Host(indices));
                continue;
            }
            let mut uploads = Vec::new();
            let mut downloads = Vec::new();
            let mut nodes = Vec::new();
            for &i in &indices {
                let id = spec.order[i];
                let Place::Gpu {
                    lowering,
                    scratch,
                    derived,
                } = &spec.places[i]
                else {
                    unreachable!("GPU runs hold GPU nodes")
                };
                let ins = graph.inputs_of(id);
                for v in ins.iter().flatten() {
                    if let Some(t) = spec.known.get(v) {
                        if !consts.of.contains_key(v) {
                            let at = consts.push(&t.data.to_le_bytes());
                            consts.of.insert(*v, at);
                        }
                        continue;
                    }
                    let r = values.root(*v);
                    if values.host_made(&r) && uploaded.insert(r) {
                        uploads.push(transfer(r)?);
                    }
                }
                let n_out = graph.node(id).outputs.len();
                for port in 0..n_out {
                    let v = ValueRef::new(id, port);
                    if values.wanted_on_host(v) {
                        downloads.push(transfer(v)?);
                    }
                }
                let works = match lowering {
                    Lowering::Work(w) => w.clone(),
                    Lowering::Alias { .. } => Vec::new(),
                };
                let bind = Bind {
                    inputs: ins
                        .iter()
                        .map(|v| v.as_ref().map(|v| slot(v, &consts)).transpose())
                        .collect::<Result<_, _>>()?,
                    outputs: (0..n_out)
                        .map(|p| slot(&ValueRef::new(id, p), &consts))
                        .collect::<Result<_, _>>()?,
                    scratch: (0..scratch.len())
                        .map(|k| Slot::Arena(arena.scratch[&(i, k)]))
                        .collect(),
                    derived: derived
                        .iter()
                        .map(|t| Slot::Consts(consts.push(&t.data.to_le_bytes())))
                        .collect(),
                };
                nodes.push(NodeWork {
                    index: i,
                    works,
                    bind,
                });
            }
            segments.push(Segment::Gpu {
                uploads,
                nodes,
                downloads,
            });
        }
        Ok(Program {
            spec,
            segments,
            arena: arena.plan,
            consts: consts.bytes,
        })
    }
}

/// The base addresses of a run state's arena and of the plan's constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bases {
    pub arena: DevicePtr,
    pub consts: DevicePtr,
}

impl Bind {
    fn address(&self, at: At, bases: Bases) -> Result<DevicePtr, RuntimeError> {
        let slot = match at.buf {
            Buf::Input(p) => self.inputs.get(p).copied().flatten(),
            Buf::Output(p) => self.outputs.get(p).copied(),
            Buf::Scratch(k) => self.scratch.get(k).copied(),
            Buf::Derived(k) => self.derived.get(k).copied(),
        }
        .ok_or_else(|| RuntimeError::internal(format!("{:?} is not bound", at.buf)))?;
        let base = match slot {
            Slot::Arena(o) => bases.arena + o as u64,
            Slot::Consts(o) => bases.consts + o as u64,
        };
        Ok(base + at.bytes as u64)
    }
}

impl NodeWork {
    /// The node's work as calls at `bases`.
    pub fn resolve(&self, bases: Bases) -> Result<Vec<Call>, RuntimeError> {
        let at = |a: At| self.bind.address(a, bases);
        self.works
            .iter()
            .map(|w| {
                Ok(match w {
                    Work::Launch(l) => Call::Kernel(KernelCall {
                        function: l.function,
                        grid: l.grid,
                        block: l.block,
                        shared_bytes: l.shared_bytes,
                        params: l
                            .args
                            .iter()
                            .map(|a| {
                                Ok(match a {
                                    Arg::Ptr(p) => at(*p)?.to_le_bytes().to_vec(),
                                    Arg::Null => 0u64.to_le_bytes().to_vec(),
                                    Arg::I32(v) => v.to_le_bytes().to_vec(),
                                    Arg::I64(v) => v.to_le_bytes().to_vec(),
                                    Arg::F32(v) => v.to_le_bytes().to_vec(),
                                    Arg::Pod(b) => b.clone(),
                                })
                            })
                            .collect::<Result<_, RuntimeError>>()?,
                    }),
                    Work::Gemm(g) => Call::Gemm(GemmCall {
                        m: g.m,
                        n: g.n,
                        k: g.k,
                        batch: g.batch,
                        a: at(g.a)?,
                        a_transposed: g.a_transposed,
                        lda: g.lda,
                        stride_a: g.stride_a,
                        b: at(g.b)?,
                        b_transposed: g.b_transposed,
                        ldb: g.ldb,
                        stride_b: g.stride_b,
                        c: at(g.c)?,
                        ldc: g.ldc,
                        stride_c: g.stride_c,
                        alpha: g.alpha,
                        beta: g.beta,
                        inputs: g.inputs,
                    }),
                    Work::Copy { from, to, bytes } => Call::Copy {
                        from: at(*from)?,
                        to: at(*to)?,
                        bytes: *bytes,
                    },
                    Work::Zero { to, bytes } => Call::Zero {
                        to: at(*to)?,
                        bytes: *bytes,
                    },
                })
            })
            .collect()
    }
}
