//! The one copy loop behind Transpose, Slice, Expand and Tile: read a tensor along arbitrary
//! strides. Axes are coalesced first, so whenever the innermost walk is contiguous whole runs
//! are copied with `extend_from_slice`, and a broadcast innermost axis repeats one value. A
//! transposing walk (the innermost axis strided, another contiguous) is copied in square
//! blocks so that both the reads and the writes stay in cache.

use super::buffers;

/// One axis of a walk: its extent and the input stride in elements (negative walks backwards,
/// zero repeats the same elements).
pub(crate) type Axis = (usize, isize);

/// Reads `v` from `offset` along `walk`, last axis fastest. The caller guarantees that every
/// position the walk reaches lies inside `v`.
pub(crate) fn copy<T: Copy + 'static>(v: &[T], offset: usize, walk: &[Axis]) -> Vec<T> {
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

/// The walk with axis `j` and the innermost one copied block by block, the other axes in
/// order around them.
fn copy_blocked<T: Copy + 'static>(
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
    let mut out = buffers::zeros_of(total, v[offset]);
    let mut index = vec![0usize; others.len()];
    let (mut ib, mut ob) = (offset as isize, 0usize);
    loop {
        for a0 in (0..m).step_by(BLOCK) {
            for b0 in (0..n).step_by(BLOCK) {
                let b1 = (b0 + BLOCK).min(n);
                for a in a0..(a0 + BLOCK).min(m) {
                    let row = &mut out[ob + a * oj + b0..ob + a * oj + b1];
                    let src = ib + a as isize + b0 as isize * s;
                    for (k, o) in row.iter_mut().enumerate() {
                        *o = v[(src + k as isize * s) as usize];
                    }
                }
            }
        }
        let mut d = others.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            ib += others[d].1;
            ob += others[d].2;
            if index[d] < others[d].0 {
                break;
            }
            ib -= others[d].1 * others[d].0 as isize;
            ob -= others[d].2 * others[d].0;
            index[d] = 0;
        }
    }
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

    #[test]
    fn blocked_transpose_matches_the_plain_walk() {
        let (b, h, w) = (3usize, 37usize, 70usize);
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
