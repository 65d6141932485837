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

impl Program {
    pub fn new(graph: &Graph, spec: Specialized) -> Result<Program, RuntimeError> {
        let position: HashMap<NodeId, usize> = spec
            .order
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        let end = spec.order.len();
        let place_of = |v: &ValueRef| position.get(&v.node).map(|&i| &spec.places[i]);
        let on_gpu = |i: usize| matches!(spec.places[i], Place::Gpu { .. });

        // The value whose memory a value is: an alias's input's, through chains of aliases.
        let root = |mut v: ValueRef| {
            while let Some(Place::Gpu {
                lowering: Lowering::Alias { input },
                ..
            }) = place_of(&v)
            {
                match graph.input(v.node, *input) {
                    Some(source) => v = source,
                    None => break,
                }
            }
            v
        };

        // Segments: runs of GPU nodes and runs of host nodes; known nodes do not run.
        let mut runs: Vec<(bool, Vec<usize>)> = Vec::new();
        for (i, place) in spec.places.iter().enumerate() {
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
        let segment_end: HashMap<usize, usize> = runs
            .iter()
            .flat_map(|(_, nodes)| {
                let last = *nodes.last().expect("runs are not empty");
                nodes.iter().map(move |&i| (i, last))
            })
            .collect();

        // Lifetimes of the arena's values, by root, and of the scratch buffers.
        let mut lives: HashMap<ValueRef, Lifetime> = HashMap::new();
        let mut widen = |v: ValueRef, first: usize, last: usize, bytes: usize| {
            let life = lives.entry(v).or_insert(Lifetime { bytes, first, last });
            life.first = life.first.min(first);
            life.last = life.last.max(last);
        };
        let type_of = |v: &ValueRef| {
            spec.types
                .get(v)
                .ok_or_else(|| RuntimeError::internal(format!("{v:?} has no type")))
        };
        let bytes_of = |v: &ValueRef| -> Result<usize, RuntimeError> {
            let (dtype, shape) = type_of(v)?;
            Ok(shape.iter().product::<usize>() * dtype.size_bytes())
        };
        let produced_at = |v: &ValueRef| position.get(&v.node).copied().unwrap_or(0);
        let outputs: HashSet<ValueRef> = graph.outputs.iter().map(|o| o.value).collect();
        for (i, &id) in spec.order.iter().enumerate() {
            for (port, _) in graph.node(id).outputs.iter().enumerate() {
                let v = ValueRef::new(id, port);
                if spec.known.contains_key(&v) {
                    continue;
                }
                let r = root(v);
                let read_on_host = graph
                    .consumers(v)
                    .iter()
                    .any(|(c, _)| position.get(c).is_some_and(|&j| !on_gpu(j)));
                if on_gpu(i) {
                    let mut last = produced_at(&v);
                    for (c, _) in graph.consumers(v) {
                        last = last.max(position.get(&c).copied().unwrap_or(end));
                    }
                    if read_on_host || outputs.contains(&v) {
                        last = last.max(segment_end[&i]);
                    }
                    widen(r, produced_at(&r), last, bytes_of(&r)?);
                }
            }
            if on_gpu(i) {
                // What this GPU node reads from the host: uploaded, alive from its production.
                for v in graph.inputs_of(id).into_iter().flatten() {
                    if spec.known.contains_key(&v) {
                        continue;
                    }
                    let r = root(v);
                    let host_made = !position.get(&r.node).is_some_and(|&j| on_gpu(j));
                    if host_made {
                        widen(r, produced_at(&r), i, bytes_of(&r)?);
                    }
                }
            }
        }
        let mut values: Vec<(ValueRef, Lifetime)> = lives.into_iter().collect();
        values.sort_by_key(|(v, _)| (v.node, v.port));
        let mut lifetimes: Vec<Lifetime> = values.iter().map(|(_, l)| *l).collect();
        let mut scratch_at: HashMap<(usize, usize), usize> = HashMap::new();
        for (i, place) in spec.places.iter().enumerate() {
            if let Place::Gpu { scratch, .. } = place {
                for (k, &bytes) in scratch.iter().enumerate() {
                    scratch_at.insert((i, k), lifetimes.len());
                    lifetimes.push(Lifetime {
                        bytes,
                        first: i,
                        last: i,
                    });
                }
            }
        }
        let arena = MemoryPlan::new(&lifetimes);
        let arena_of: HashMap<ValueRef, usize> = values
            .iter()
            .enumerate()
            .map(|(k, (v, _))| (*v, arena.offsets[k]))
            .collect();

        // Constants: the known values GPU nodes read, and what their lowerings derived.
        let mut consts: Vec<u8> = Vec::new();
        let mut const_of: HashMap<ValueRef, usize> = HashMap::new();
        let mut push = |bytes: &[u8]| {
            let at = consts.len().div_ceil(CONST_ALIGN) * CONST_ALIGN;
            consts.resize(at, 0);
            consts.extend_from_slice(bytes);
            at
        };

        let slot =
            |v: &ValueRef, const_of: &HashMap<ValueRef, usize>| -> Result<Slot, RuntimeError> {
                if let Some(&c) = const_of.get(v) {
                    return Ok(Slot::Consts(c));
                }
                arena_of
                    .get(&root(*v))
                    .map(|&o| Slot::Arena(o))
                    .ok_or_else(|| RuntimeError::internal(format!("{v:?} has no place")))
            };
        let transfer = |v: ValueRef| -> Result<Transfer, RuntimeError> {
            let (dtype, shape) = type_of(&v)?;
            let offset = *arena_of
                .get(&root(v))
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
                        if !const_of.contains_key(v) {
                            let at = push(&t.data.to_le_bytes());
                            const_of.insert(*v, at);
                        }
                        continue;
                    }
                    let r = root(*v);
                    let host_made = !position.get(&r.node).is_some_and(|&j| on_gpu(j));
                    if host_made && uploaded.insert(r) {
                        uploads.push(transfer(r)?);
                    }
                }
                let n_out = graph.node(id).outputs.len();
                for port in 0..n_out {
                    let v = ValueRef::new(id, port);
                    let read_on_host = graph
                        .consumers(v)
                        .iter()
                        .any(|(c, _)| position.get(c).is_some_and(|&j| !on_gpu(j)));
                    if read_on_host || outputs.contains(&v) {
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
                        .map(|v| v.as_ref().map(|v| slot(v, &const_of)).transpose())
                        .collect::<Result<_, _>>()?,
                    outputs: (0..n_out)
                        .map(|p| slot(&ValueRef::new(id, p), &const_of))
                        .collect::<Result<_, _>>()?,
                    scratch: (0..scratch.len())
                        .map(|k| Slot::Arena(arena.offsets[scratch_at[&(i, k)]]))
                        .collect(),
                    derived: derived
                        .iter()
                        .map(|t| Slot::Consts(push(&t.data.to_le_bytes())))
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
            arena,
            consts,
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
