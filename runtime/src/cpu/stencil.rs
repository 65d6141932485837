//! The block kernels of depthwise convolution: `R` output rows of one plane, [`LANES`] columns
//! at a time, every tap a multiply-add of one kernel value with a contiguous run of the padded
//! input (see [`super::depthwise`] for the layout). The accumulators stay in registers over all
//! taps, which are summed in row-major order.

use super::isa::{Isa, Level};

/// Output columns computed together: one AVX-512 vector, two AVX2 vectors. The padded layout
/// rounds output rows up to a multiple of this.
pub(crate) const LANES: usize = 16;
/// Output rows computed together: with one vector per row, enough independent multiply-add
/// chains to keep the FMA units busy.
pub(crate) const ROWS: usize = 6;

/// Where one block reads and writes.
pub(crate) struct Block<'a> {
    pub scratch: &'a [f32],
    /// Scratch offset of every tap, relative to the first input of an output row.
    pub offsets: &'a [usize],
    pub kernel: &'a [f32],
    /// Scratch offset of the block's first output row.
    pub base: usize,
    /// Scratch offset between consecutive output rows.
    pub step: usize,
    /// Output columns.
    pub ow: usize,
    /// `Some(k)` when the taps are a k×k window at unit stride and dilation, so that tap
    /// `(i, j)` of output row `r` reads input row `r + i`: one load of an input row then
    /// serves up to `k` output rows.
    pub square: Option<usize>,
}

impl Block<'_> {
    /// Computes `out.len() / ow` rows (1 to [`ROWS`]) into `out`.
    pub fn run(&self, isa: Isa, out: &mut [f32]) {
        let rows = out.len() / self.ow.max(1);
        // Every read lies below this bound: checked once here for the unchecked kernels.
        let width = self.ow.div_ceil(LANES) * LANES;
        let reach = self.offsets.iter().max().copied().unwrap_or(0);
        assert!((1..=ROWS).contains(&rows) && out.len() == rows * self.ow);
        assert!(self.kernel.len() == self.offsets.len());
        assert!(self.base + (rows - 1) * self.step + reach + width <= self.scratch.len());
        // The kernel `$f` for this block's row count, with `$k` after the rows when given.
        macro_rules! by_rows {
            ($($f:ident)::+ $(, $k:literal)?) => {
                match rows {
                    6 => $($f)::+::<6 $(, $k)?>,
                    5 => $($f)::+::<5 $(, $k)?>,
                    4 => $($f)::+::<4 $(, $k)?>,
                    3 => $($f)::+::<3 $(, $k)?>,
                    2 => $($f)::+::<2 $(, $k)?>,
                    _ => $($f)::+::<1 $(, $k)?>,
                }
            };
        }
        match isa.level() {
            Level::Scalar => by_rows!(portable)(self, out),
            // SAFETY: an `Isa` is only made for instructions the machine has, and reads are in
            // bounds by the assertions.
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => unsafe { by_rows!(x86::avx2)(self, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for AVX2 above; `square` is set only for the square window's offsets.
            Level::Avx512 => unsafe {
                match self.square {
                    Some(3) => by_rows!(x86::avx512_square, 3)(self, out),
                    Some(5) => by_rows!(x86::avx512_square, 5)(self, out),
                    _ => by_rows!(x86::avx512)(self, out),
                }
            },
        }
    }
}

fn portable<const R: usize>(b: &Block, out: &mut [f32]) {
    for x in (0..b.ow).step_by(LANES) {
        let mut acc = [[0.0f32; LANES]; R];
        for (&k, &off) in b.kernel.iter().zip(b.offsets) {
            for (r, a) in acc.iter_mut().enumerate() {
                let at = b.base + r * b.step + off + x;
                let s: &[f32; LANES] = b.scratch[at..at + LANES].try_into().unwrap();
                for (d, &v) in a.iter_mut().zip(s) {
                    *d += k * v;
                }
            }
        }
        let n = LANES.min(b.ow - x);
        for (r, a) in acc.iter().enumerate() {
            out[r * b.ow + x..r * b.ow + x + n].copy_from_slice(&a[..n]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, LANES};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 and FMA must be available, and every read `base + r * step + offset + x .. + LANES`
    /// (`r < R`, `x < ow` rounded up to `LANES`) must lie inside `scratch`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<const R: usize>(b: &Block, out: &mut [f32]) {
        // SAFETY: the caller upholds the contract under `# Safety` above.
        unsafe {
            let src = b.scratch.as_ptr().add(b.base);
            let mut x = 0;
            while x < b.ow {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for (&k, &off) in b.kernel.iter().zip(b.offsets) {
                    let kv = _mm256_set1_ps(k);
                    let p = src.add(off + x);
                    for (r, a) in acc.iter_mut().enumerate() {
                        let row = p.add(r * b.step);
                        a[0] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(row), a[0]);
                        a[1] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(row.add(8)), a[1]);
                    }
                }
                let n = LANES.min(b.ow - x);
                for (r, a) in acc.iter().enumerate() {
                    let mut tmp = [0.0f32; LANES];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), a[1]);
                    out[r * b.ow + x..r * b.ow + x + n].copy_from_slice(&tmp[..n]);
                }
                x += LANES;
            }
        }
    }

    /// # Safety
    /// As [`avx2`], with AVX-512F instead of AVX2 and FMA.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<const R: usize>(b: &Block, out: &mut [f32]) {
        // SAFETY: the caller upholds the contract under `# Safety` above.
        unsafe {
            let src = b.scratch.as_ptr().add(b.base);
            let mut x = 0;
            while x < b.ow {
                let mut acc = [_mm512_setzero_ps(); R];
                for (&k, &off) in b.kernel.iter().zip(b.offsets) {
                    let kv = _mm512_set1_ps(k);
                    let p = src.add(off + x);
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(kv, _mm512_loadu_ps(p.add(r * b.step)), *a);
                    }
                }
                store(b, out, x, &acc);
                x += LANES;
            }
        }
    }

    /// [`avx512`] for a `K`×`K` window at unit stride and dilation ([`Block::square`]): input
    /// rows in the outer loop, each loaded vector multiplied into every output row it reaches.
    /// A tap reads a vector that starts at any column, so it mostly straddles two cache lines;
    /// with each load serving up to `K` rows the loads no longer bound the kernel. Two vectors
    /// of columns at a time where the row has them, so that each kernel value broadcast serves
    /// two multiply-adds. Every output still sums its taps in row-major order.
    ///
    /// # Safety
    /// As [`avx512`]; the offsets must be those of the square window (`i * step + j`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512_square<const R: usize, const K: usize>(b: &Block, out: &mut [f32]) {
        // SAFETY: the caller upholds the contract under `# Safety` above.
        unsafe {
            const { assert!(R <= super::ROWS && K <= 5 && R + K - 1 <= 10) };
            debug_assert!(
                b.kernel.len() == K * K && b.offsets[K * K - 1] == (K - 1) * (b.step + 1)
            );
            let src = b.scratch.as_ptr().add(b.base);
            let width = b.ow.div_ceil(LANES) * LANES;
            let mut x = 0;
            while x + 2 * LANES <= width {
                let [first, second] =
                    square_columns::<R, K, 2>(src.add(x), b.step, b.kernel.as_ptr());
                store(b, out, x, &first);
                store(b, out, x + LANES, &second);
                x += 2 * LANES;
            }
            if x < width {
                let [acc] = square_columns::<R, K, 1>(src.add(x), b.step, b.kernel.as_ptr());
                store(b, out, x, &acc);
            }
        }
    }

    /// Stores the `R` rows of one vector of columns from `x`.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[inline(always)]
    unsafe fn store<const R: usize>(b: &Block, out: &mut [f32], x: usize, acc: &[__m512; R]) {
        let n = LANES.min(b.ow - x);
        let mask: __mmask16 = if n == LANES { !0 } else { (1 << n) - 1 };
        for (r, &a) in acc.iter().enumerate() {
            let row = &mut out[r * b.ow + x..];
            // SAFETY: `Block::run` asserted that `out` holds `R` rows of `ow`, so this row has
            // the `n` floats from `x` that the mask writes; the caller guarantees AVX-512F.
            unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), mask, a) };
        }
    }

    /// The `R` accumulators of each of `V` consecutive vectors of columns of
    /// [`avx512_square`]. Not inlined, so that the kernel values are broadcast from memory at
    /// each use: hoisted out of the column loop they took 25 registers and spilled.
    ///
    /// # Safety
    /// As [`avx512_square`], for the block's input at `src`, `V` vectors wide.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn square_columns<const R: usize, const K: usize, const V: usize>(
        src: *const f32,
        step: usize,
        k: *const f32,
    ) -> [[__m512; R]; V] {
        // SAFETY: the caller upholds the contract under `# Safety` above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); R]; V];
            // Input rows one by one, written out so that each row's set of output rows is known at
            // compile time and the accumulators stay in registers.
            macro_rules! input_rows {
                ($($q:literal)+) => {$(
                    if $q < R + K - 1 {
                        let p = src.add($q * step);
                        for j in 0..K {
                            let v: [__m512; V] =
                                std::array::from_fn(|t| _mm512_loadu_ps(p.add(j + t * LANES)));
                            for r in 0..R {
                                // Tap row `i` of output row `r` reads input row `r + i`.
                                let i = ($q as usize).wrapping_sub(r);
                                if i < K {
                                    let kv = _mm512_set1_ps(*k.add(i * K + j));
                                    for (a, v) in acc.iter_mut().zip(&v) {
                                        a[r] = _mm512_fmadd_ps(kv, *v, a[r]);
                                    }
                                }
                            }
                        }
                    }
                )+};
            }
            input_rows!(0 1 2 3 4 5 6 7 8 9);
            acc
        }
    }
}
