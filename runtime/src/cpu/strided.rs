//! The one copy loop behind Transpose, Slice, Expand and Tile: read a tensor along arbitrary
//! strides. Axes are coalesced first, so whenever the innermost walk is contiguous whole runs
//! are copied as slices, and a broadcast innermost axis repeats one value. A transposing walk
//! (the innermost axis strided, another contiguous) is copied in square blocks so that both
//! the reads and the writes stay in cache, whole 8x8 tiles of 4-byte elements through
//! registers, blocks in parallel when the copy is large.

use super::buffers;
use super::conv::SharedOut;
use rayon::prelude::*;

/// One axis of a walk: its extent and the input stride in elements (negative walks backwards,
/// zero repeats the same elements).
pub(crate) type Axis = (usize, isize);

/// Reads `v` from `offset` along `walk`, last axis fastest. The caller guarantees that every
/// position the walk reaches lies inside `v`.
pub(crate) fn copy<T: Copy + Send + Sync + 'static>(
    v: &[T],
    offset: usize,
    walk: &[Axis],
) -> Vec<T> {
    let total: usize = walk.iter().map(|a| a.0).product();
    // From the run's pool: a fresh output faulted its pages in on every run.
    let mut out = buffers::empty(total);
    if total == 0 {
        return out;
    }
    let walk = coalesce(walk);
    if let Some(j) = blocked_axis(&walk) {
        return copy_blocked(v, offset, &walk, j, total);
    }
    let Some((&(n, s), outer)) = walk.split_last() else {
        out.push(v[offset]);
        return out;
    };
    let mut index = vec![0usize; outer.len()];
    let mut base = offset as isize;
    loop {
        let b = base as usize;
        match s {
            1 => out.extend_from_slice(&v[b..b + n]),
            0 => out.extend(std::iter::repeat_n(v[b], n)),
            _ => out.extend((0..n as isize).map(|i| v[(base + i * s) as usize])),
        }
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            base += outer[d].1;
            if index[d] < outer[d].0 {
                break;
            }
            base -= outer[d].1 * outer[d].0 as isize;
            index[d] = 0;
        }
    }
}

/// Square block side of a transposing copy: 32 rows of 32 elements of up to 8 bytes stay
/// within a typical L1 cache.
const BLOCK: usize = 32;

/// The axis to block with the innermost one: an axis the walk reads contiguously while the
/// innermost axis reads with a stride, both long enough for blocking to pay.
fn blocked_axis(walk: &[Axis]) -> Option<usize> {
    let (&(n, s), outer) = walk.split_last()?;
    if s == 0 || s == 1 || n < BLOCK / 4 {
        return None;
    }
    outer.iter().position(|&(m, t)| t == 1 && m >= BLOCK / 4)
}

/// Elements past which a transposing copy runs its blocks in parallel: ViT-S's 50
/// Transposes a run (attention heads split and merged, `K` transposed), on one thread, were
/// 3% of its time.
const PARALLEL: usize = 1 << 15;

/// The walk with axis `j` and the innermost one copied block by block, the other axes in
/// order around them: a task for each position of the other axes and block of axis `j`,
/// which writes whole rows of the output of its own.
fn copy_blocked<T: Copy + Send + Sync + 'static>(
    v: &[T],
    offset: usize,
    walk: &[Axis],
    j: usize,
    total: usize,
) -> Vec<T> {
    let r = walk.len();
    let mut out_strides = vec![1usize; r];
    for i in (0..r - 1).rev() {
        out_strides[i] = out_strides[i + 1] * walk[i + 1].0;
    }
    let (n, s) = walk[r - 1];
    let (m, oj) = (walk[j].0, out_strides[j]);
    let others: Vec<(usize, isize, usize)> = (0..r - 1)
        .filter(|&i| i != j)
        .map(|i| (walk[i].0, walk[i].1, out_strides[i]))
        .collect();
    // Every element is written below, so an f32 output is not zeroed first.
    let mut out = buffers::overwritten(total, v[offset]);
    let shared = SharedOut::new(&mut out);
    let blocks = m.div_ceil(BLOCK);
    let tiles = avx_tiles::<T>();
    let task = |t: usize| {
        let (mut rest, a0) = (t / blocks, t % blocks * BLOCK);
        let (mut ib, mut ob) = (offset as isize, 0usize);
        for &(extent, stride, out_stride) in others.iter().rev() {
            let i = rest % extent;
            rest /= extent;
            ib += i as isize * stride;
            ob += i * out_stride;
        }
        let a1 = (a0 + BLOCK).min(m);
        for b0 in (0..n).step_by(BLOCK) {
            let b1 = (b0 + BLOCK).min(n);
            // Whole 8x8 tiles through registers, where the machine has AVX and the elements
            // are 4 bytes; the rest element by element.
            let (a8, b8) = if tiles {
                (a0 + (a1 - a0) / 8 * 8, b0 + (b1 - b0) / 8 * 8)
            } else {
                (a0, b0)
            };
            #[cfg(target_arch = "x86_64")]
            for a in (a0..a8).step_by(8) {
                for b in (b0..b8).step_by(8) {
                    let src = ib + a as isize + b as isize * s;
                    let corners = [src, src + 7, src + 7 * s, src + 7 + 7 * s];
                    assert!(corners.iter().all(|&c| c >= 0 && (c as usize) < v.len()));
                    // SAFETY: output elements `ob + (a + q)·oj + b..+8` belong to this task's
                    // position of the other axes and rows of its block alone.
                    let rows: [*mut T; 8] = std::array::from_fn(|q| unsafe {
                        shared.segment(ob + (a + q) * oj + b, 8).as_mut_ptr()
                    });
                    // SAFETY: `tiles` holds only where AVX is present and `T` is 4 bytes; the
                    // tile's reads lie inside `v` (its corners, asserted above, bound them).
                    unsafe { tile8(v.as_ptr().offset(src).cast(), s, rows.map(|r| r.cast())) };
                }
            }
            for a in a0..a1 {
                let from = if a < a8 { b8 } else { b0 };
                // SAFETY: output element `ob + a·oj + b` belongs to this task's position of
                // the other axes and row `a` of its block alone.
                let row = unsafe { shared.segment(ob + a * oj + from, b1 - from) };
                let src = ib + a as isize + from as isize * s;
                for (k, o) in row.iter_mut().enumerate() {
                    *o = v[(src + k as isize * s) as usize];
                }
            }
        }
    };
    let tasks = others.iter().map(|o| o.0).product::<usize>() * blocks;
    if total >= PARALLEL {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
    out
}

/// Whether [`copy_blocked`] moves whole 8x8 tiles of `T` through [`tile8`].
fn avx_tiles<T>() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::mem::size_of::<T>() == 4 && std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// An 8x8 tile of 4-byte elements transposed through registers: row `q` of the output (8
/// elements from `out[q]`) is element `q` of each of the 8 input rows, which start `s`
/// elements apart from `src`. A bitwise move: any 4-byte pattern, NaN payloads included,
/// arrives as it was. Element by element, ViT-S's 12 `K` transposes (`[257, 6, 64]` to `[6,
/// 64, 257]`) ran at 0.8 ns an element and did not gain from a second thread.
///
/// # Safety
/// AVX must be available; `src` readable for 8 elements from each of `src + i·s`, `i < 8`,
/// and each `out[q]` writable for 8, none of which anything else references.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn tile8(src: *const f32, s: isize, out: [*mut f32; 8]) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
    // SAFETY: the caller upholds the contract under `# Safety` above.
    unsafe {
        let r = std::array::from_fn(|i| _mm256_loadu_ps(src.offset(i as isize * s)));
        for (o, row) in out.into_iter().zip(transpose8(r)) {
            _mm256_storeu_ps(o, row);
        }
    }
}

/// The 8x8 transpose of `r` in registers: element `i` of row `q` of the result is element `q`
/// of `r[i]`. Pairs, then quads, then halves: the usual three rounds.
///
/// # Safety
/// AVX must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) unsafe fn transpose8(
    r: [std::arch::x86_64::__m256; 8],
) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::{
        _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Drops extent-1 axes and merges each axis into the one before it when together they walk
/// evenly (the outer stride is the inner stride times the inner extent).
fn coalesce(walk: &[Axis]) -> Vec<Axis> {
    let mut out: Vec<Axis> = Vec::with_capacity(walk.len());
    for &(n, s) in walk.iter().filter(|a| a.0 != 1) {
        match out.last_mut() {
            Some(last) if last.1 == s * n as isize => *last = (last.0 * n, s),
            _ => out.push((n, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::copy;

    #[test]
    fn transposes_slices_and_broadcasts() {
        let v: Vec<i32> = (0..6).collect();
        assert_eq!(copy(&v, 0, &[(3, 1), (2, 3)]), [0, 3, 1, 4, 2, 5]);
        assert_eq!(copy(&v, 0, &[(2, 3), (3, 1)]), v);
        assert_eq!(copy(&v, 5, &[(2, -3), (2, -1)]), [5, 4, 2, 1]);
        assert_eq!(copy(&v, 1, &[(2, 0), (1, 3), (2, 1)]), [1, 2, 1, 2]);
        assert_eq!(copy(&v, 4, &[(1, 3), (1, 1)]), [4]);
        assert!(copy(&v, 0, &[(0, 1), (3, 1)]).is_empty());
    }

    /// Small (one thread) and large enough for parallel blocks, ragged blocks on both axes.
    #[test]
    fn blocked_transpose_matches_the_plain_walk() {
        for (b, h, w) in [(3usize, 37usize, 70usize), (5, 131, 301)] {
            blocked_transpose_of(b, h, w);
        }
    }

    /// Two other axes that do not coalesce, around a blocked pair, in parallel: `[2, 3, 70,
    /// 90]` permuted `(1, 0, 3, 2)`.
    #[test]
    fn blocked_transpose_walks_every_other_axis() {
        let (p, q, h, w) = (2usize, 3usize, 70usize, 90usize);
        let v: Vec<u32> = (0..(p * q * h * w) as u32).collect();
        let walk = [
            (q, (h * w) as isize),
            (p, (q * h * w) as isize),
            (w, 1),
            (h, w as isize),
        ];
        let got = copy(&v, 0, &walk);
        let mut want = Vec::new();
        for j in 0..q {
            for i in 0..p {
                for x in 0..w {
                    for y in 0..h {
                        want.push(v[((i * q + j) * h + y) * w + x]);
                    }
                }
            }
        }
        assert!(got.len() >= super::PARALLEL);
        assert_eq!(got, want);
    }

    /// A transpose that also walks its rows backwards (a negative stride on the blocked
    /// walk's innermost axis), through whole tiles and ragged edges.
    #[test]
    fn blocked_transpose_walks_backwards() {
        let (h, w) = (45usize, 83usize);
        let v: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        let got = copy(&v, (h - 1) * w, &[(w, 1), (h, -(w as isize))]);
        let want: Vec<f32> = (0..w)
            .flat_map(|x| (0..h).rev().map(move |y| (y * w + x) as f32))
            .collect();
        assert_eq!(got, want);
    }

    fn blocked_transpose_of(b: usize, h: usize, w: usize) {
        let v: Vec<u32> = (0..(b * h * w) as u32).collect();
        let got = copy(&v, 0, &[(b, (h * w) as isize), (w, 1), (h, w as isize)]);
        let mut want = Vec::new();
        for i in 0..b {
            for x in 0..w {
                for y in 0..h {
                    want.push(v[i * h * w + y * w + x]);
                }
            }
        }
        assert_eq!(got, want);
        let sliced = copy(&v, w + 2, &[(w - 4, 1), (h - 1, w as isize)]);
        let want: Vec<u32> = (0..w - 4)
            .flat_map(|x| (1..h).map(move |y| (y * w + x + 2) as u32))
            .collect();
        assert_eq!(sliced, want);
    }
}
