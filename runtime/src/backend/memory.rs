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

#[cfg(test)]
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
        let mut index = PlacedIndex::new(values);
        let mut offsets = vec![0; values.len()];
        // Values placed so far, as (offset, end, index), kept sorted by offset.
        let mut placed: Vec<(usize, usize, usize)> = Vec::with_capacity(values.len());
        let mut neighbours = Vec::new();
        let mut arena_bytes = 0;
        for i in order {
            let need = values[i].bytes.div_ceil(ALIGN) * ALIGN;
            let (first, last) = (values[i].first, values[i].last);
            // Only the placed values alive with this one constrain it. In a chain of layers
            // they are a handful, found through the index and sorted by offset, where testing
            // every placed value was quadratic (a fuzzed Scan unrolled to 12,000 layers spent
            // seconds here). Where many are alive together, sorting them all for every value
            // would cost more than walking the placed values in offset order up to the first
            // gap, so the walk is taken. Both give the same plan.
            let many = placed.len() / 8;
            neighbours.clear();
            index.overlapping(&values[i], |j| {
                neighbours.push((
                    offsets[j],
                    offsets[j] + values[j].bytes.div_ceil(ALIGN) * ALIGN,
                ));
                neighbours.len() <= many
            });
            let mut offset = 0;
            let mut fits_below = |start: usize, end: usize| {
                if start >= offset + need {
                    return true;
                }
                offset = offset.max(end);
                false
            };
            if neighbours.len() <= many {
                neighbours.sort_unstable();
                neighbours
                    .iter()
                    .any(|&(start, end)| fits_below(start, end));
            } else {
                placed
                    .iter()
                    .filter(|&&(_, _, j)| values[j].first <= last && first <= values[j].last)
                    .any(|&(start, end, _)| fits_below(start, end));
            }
            index.insert(i);
            placed.insert(
                placed.partition_point(|&(start, _, _)| start <= offset),
                (offset, offset + need, i),
            );
            offsets[i] = offset;
            arena_bytes = arena_bytes.max(offset + need);
        }
        MemoryPlan {
            offsets,
            arena_bytes,
            widest_cut_bytes: widest_cut(values),
            values_bytes: values.iter().map(|v| v.bytes).sum(),
        }
    }
}

/// The values placed so far, found by lifetime: all values sorted by first step, under a tree
/// of the latest last step among the placed ones in each range, so the placed values alive
/// during a span are found in time proportional to their number (times a logarithm).
struct PlacedIndex<'a> {
    values: &'a [Lifetime],
    /// Value indices sorted by first step, and each value's position in that order.
    by_first: Vec<usize>,
    position: Vec<usize>,
    /// A segment tree over `by_first`: node `n` covers a range, its children `2n` and `2n + 1`
    /// the halves, leaves start at `leaves`; each holds one past the latest last step among
    /// the range's placed values, 0 where none is placed.
    latest: Vec<usize>,
    leaves: usize,
}

impl<'a> PlacedIndex<'a> {
    fn new(values: &'a [Lifetime]) -> PlacedIndex<'a> {
        let mut by_first: Vec<usize> = (0..values.len()).collect();
        by_first.sort_by_key(|&i| (values[i].first, i));
        let mut position = vec![0; values.len()];
        for (k, &i) in by_first.iter().enumerate() {
            position[i] = k;
        }
        let leaves = by_first.len().next_power_of_two();
        PlacedIndex {
            values,
            by_first,
            position,
            latest: vec![0; 2 * leaves],
            leaves,
        }
    }

    fn insert(&mut self, i: usize) {
        let mut n = self.leaves + self.position[i];
        self.latest[n] = self.values[i].last + 1;
        while n > 1 {
            n /= 2;
            self.latest[n] = self.latest[2 * n].max(self.latest[2 * n + 1]);
        }
    }

    /// Calls `f` with every placed value alive at some step of `life`, until `f` returns false.
    fn overlapping(&self, life: &Lifetime, mut f: impl FnMut(usize) -> bool) {
        // Values that start after `life` ends cannot overlap it.
        let end = self
            .by_first
            .partition_point(|&i| self.values[i].first <= life.last);
        let mut stack = vec![(1, 0, self.leaves)];
        while let Some((n, lo, hi)) = stack.pop() {
            if lo >= end || self.latest[n] <= life.first {
                continue;
            }
            if n >= self.leaves {
                if !f(self.by_first[lo]) {
                    return;
                }
            } else {
                let mid = (lo + hi) / 2;
                stack.push((2 * n + 1, mid, hi));
                stack.push((2 * n, lo, mid));
            }
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
    fn the_index_finds_exactly_the_placed_values_alive_together() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        // Mostly short lives, some spanning the whole run, like graph outputs and skips.
        let values: Vec<_> = (0..500)
            .map(|_| {
                let first = next(200);
                let span = if next(10) == 0 { next(200) } else { next(4) };
                life(64, first, first + span)
            })
            .collect();
        let mut index = PlacedIndex::new(&values);
        for (i, v) in values.iter().enumerate() {
            if i % 2 == 0 {
                index.insert(i);
            }
            let mut found = Vec::new();
            index.overlapping(v, |j| {
                found.push(j);
                true
            });
            found.sort_unstable();
            let want: Vec<usize> = (0..=i)
                .filter(|&j| j % 2 == 0 && values[j].overlaps(v))
                .collect();
            assert_eq!(found, want, "{v:?}");
        }
    }

    /// The planner as it was, testing every placed value: the index and the walk it takes where
    /// many values are alive together must give exactly its plan.
    fn quadratic_plan(values: &[Lifetime]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(values[i].bytes), values[i].first, i));
        let mut offsets = vec![0; values.len()];
        let mut placed: Vec<(usize, usize, usize)> = Vec::new();
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
            let at = placed.partition_point(|&(start, _, _)| start <= offset);
            placed.insert(at, (offset, offset + need, i));
            offsets[i] = offset;
        }
        offsets
    }

    #[test]
    fn the_plan_is_the_one_testing_every_placed_value_gives() {
        let mut seed = 0x0123_4567_89ab_cdefu64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        // A chain, then the same with a third of the values alive to the end (a Scan's outputs
        // waiting for one Concat), so that both ways of finding the neighbours run.
        for long in [0, 3] {
            let values: Vec<_> = (0..2000)
                .map(|s| {
                    let last = if long > 0 && next(long) == 0 {
                        2000
                    } else {
                        s + 1 + next(3)
                    };
                    life(64 * (1 + next(100)), s, last)
                })
                .collect();
            let plan = MemoryPlan::new(&values);
            assert_disjoint(&values, &plan);
            assert_eq!(
                plan.offsets,
                quadratic_plan(&values),
                "long-lived 1 in {long}"
            );
        }
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
