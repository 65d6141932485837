//! The static memory plan: when every computed value of a plan has a static size, each gets an
//! offset in one arena such that values alive at the same step never overlap. The arena's size
//! is the plan's memory peak, reported in `report.json`; the CUDA backend allocates its device
//! memory as that one arena, and the CPU backend bounds its buffer pool by it from the first
//! run on (its kernels return owned tensors, so host values live in pooled buffers sized like
//! the plan's, not at its offsets).
//!
//! Placement is greedy by size (Pisarchyk and Lee, "Efficient Memory Management for Deep
//! Neural Net Inference", 2020, as in TensorFlow Lite's arena planner): the largest value first,
//! each into the lowest gap between the values already placed whose lifetimes overlap its own.
//! It is not optimal (that problem is NP-hard) but lands within a few percent of the widest cut,
//! the lower bound, on convolutional nets.

use std::collections::HashMap;
use temblor_ir::{Graph, Op, ValueRef};

/// Offsets are multiples of this many bytes, a cache line and the widest vector load.
pub const ALIGN: usize = 64;

/// One value to place: its size and the steps it is alive for, from the step that writes it to
/// the last step that reads it (the plan's end for graph outputs), both inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
}

impl Lifetime {
    fn overlaps(&self, other: &Lifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Where each value of a plan lives in its arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Per value, in the order given to [`MemoryPlan::new`] (by node and port for
    /// [`plan_memory`]): its offset in the arena.
    pub offsets: Vec<usize>,
    /// The arena's size: the plan's memory peak.
    pub arena_bytes: usize,
    /// The most bytes alive at one step, a lower bound on any arena (alignment aside).
    pub widest_cut_bytes: usize,
    /// Every value's bytes summed: the memory of a plan that never reused any.
    pub values_bytes: usize,
}

impl MemoryPlan {
    pub fn new(values: &[Lifetime]) -> MemoryPlan {
        let mut order: Vec<usize> = (0..values.len()).collect();
        // Largest first; ties by first use, so the plan does not depend on the sort's stability.
        order.sort_by_key(|&i| (std::cmp::Reverse(values[i].bytes), values[i].first, i));
        let mut offsets = vec![0; values.len()];
        // Values placed so far, as (offset, end, index), kept sorted by offset.
        let mut placed: Vec<(usize, usize, usize)> = Vec::with_capacity(values.len());
        let mut arena_bytes = 0;
        for i in order {
            let need = values[i].bytes.div_ceil(ALIGN) * ALIGN;
            let mut offset = 0;
            for &(start, end, j) in &placed {
                if !values[i].overlaps(&values[j]) {
                    continue;
                }
                if start >= offset + need {
                    break;
                }
                offset = offset.max(end);
            }
            let end = offset + need;
            let at = placed.partition_point(|&(start, _, _)| start <= offset);
            placed.insert(at, (offset, end, i));
            offsets[i] = offset;
            arena_bytes = arena_bytes.max(end);
        }
        MemoryPlan {
            offsets,
            arena_bytes,
            widest_cut_bytes: widest_cut(values),
            values_bytes: values.iter().map(|v| v.bytes).sum(),
        }
    }
}

/// The memory plan of `g`'s computed values, run one node at a time in topological order as
/// every backend runs it (graph inputs and constants are the caller's and the plan's, not the
/// arena's); `None` when some value's size is only known at run time, or `g` has a cycle.
pub fn plan_memory(g: &Graph) -> Option<MemoryPlan> {
    let order = g.topo_order().ok()?;
    let mut lives: HashMap<ValueRef, Lifetime> = HashMap::new();
    let mut step = 0;
    for id in order {
        let node = g.node(id);
        if matches!(node.op, Op::Input { .. } | Op::Constant { .. }) {
            continue;
        }
        for v in g.inputs_of(id).into_iter().flatten() {
            if let Some(life) = lives.get_mut(&v) {
                life.last = step;
            }
        }
        for (port, out) in node.outputs.iter().enumerate() {
            let count: Option<usize> = out.ty.shape.dims().iter().map(|d| d.known()).product();
            let bytes = count? * out.ty.dtype.size_bytes();
            let life = Lifetime {
                bytes,
                first: step,
                last: step,
            };
            lives.insert(ValueRef::new(id, port), life);
        }
        step += 1;
    }
    for o in &g.outputs {
        if let Some(life) = lives.get_mut(&o.value) {
            life.last = step;
        }
    }
    let mut values: Vec<(ValueRef, Lifetime)> = lives.into_iter().collect();
    values.sort_by_key(|(v, _)| (v.node, v.port));
    let values: Vec<Lifetime> = values.into_iter().map(|(_, l)| l).collect();
    Some(MemoryPlan::new(&values))
}

/// The most bytes alive at any one step.
fn widest_cut(values: &[Lifetime]) -> usize {
    let steps = values.iter().map(|v| v.last + 1).max().unwrap_or(0);
    let mut delta = vec![0isize; steps + 1];
    for v in values {
        delta[v.first] += v.bytes as isize;
        delta[v.last + 1] -= v.bytes as isize;
    }
    let mut live = 0isize;
    let mut widest = 0isize;
    for d in delta {
        live += d;
        widest = widest.max(live);
    }
    widest as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(bytes: usize, first: usize, last: usize) -> Lifetime {
        Lifetime { bytes, first, last }
    }

    /// No two values alive at one step share a byte, and every value fits in the arena.
    fn assert_disjoint(values: &[Lifetime], plan: &MemoryPlan) {
        for (i, a) in values.iter().enumerate() {
            let (oa, ea) = (plan.offsets[i], plan.offsets[i] + a.bytes);
            assert!(ea <= plan.arena_bytes);
            assert_eq!(oa % ALIGN, 0);
            for (j, b) in values.iter().enumerate().skip(i + 1) {
                let (ob, eb) = (plan.offsets[j], plan.offsets[j] + b.bytes);
                assert!(
                    !a.overlaps(b) || ea <= ob || eb <= oa,
                    "values {i} {a:?} at {oa} and {j} {b:?} at {ob} overlap"
                );
            }
        }
    }

    #[test]
    fn a_chain_reuses_memory_and_needs_only_two_values_at_once() {
        // x0 -> x1 -> x2 -> x3: each step reads one value and writes the next.
        let values: Vec<_> = (0..4).map(|s| life(1024, s, s + 1)).collect();
        let plan = MemoryPlan::new(&values);
        assert_disjoint(&values, &plan);
        assert_eq!(plan.arena_bytes, 2048);
        assert_eq!(plan.widest_cut_bytes, 2048);
        assert_eq!(plan.values_bytes, 4096);
    }

    #[test]
    fn a_small_value_fills_the_gap_a_large_one_left() {
        let values = [
            life(4096, 0, 1),
            life(4096, 1, 3),
            life(1024, 2, 3),
            life(2048, 0, 0),
        ];
        let plan = MemoryPlan::new(&values);
        assert_disjoint(&values, &plan);
        // The third value reuses the first's bytes, freed after step 1.
        assert_eq!(plan.offsets[2], plan.offsets[0]);
        // Steps 0 and 1 hold 6 and 8 KiB; the second value fits where the fourth was.
        assert_eq!(plan.offsets[1], plan.offsets[3]);
        assert_eq!(plan.arena_bytes, 8192);
        assert_eq!(plan.widest_cut_bytes, 8192);
    }

    #[test]
    fn random_lifetimes_never_overlap_and_stay_near_the_widest_cut() {
        // A fixed linear congruential sequence: the test is the same on every run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let values: Vec<_> = (0..300)
            .map(|s| {
                let first = s / 2;
                life(64 * (1 + next(256)), first, first + next(12))
            })
            .collect();
        let plan = MemoryPlan::new(&values);
        assert_disjoint(&values, &plan);
        assert!(plan.arena_bytes >= plan.widest_cut_bytes);
        assert!(plan.arena_bytes < plan.values_bytes / 4);
    }

    #[test]
    fn nothing_to_place_is_an_empty_arena() {
        let plan = MemoryPlan::new(&[]);
        assert_eq!(
            (plan.arena_bytes, plan.widest_cut_bytes, plan.values_bytes),
            (0, 0, 0)
        );
    }
}
