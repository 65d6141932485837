//! The vector kernel of [`super`]: per kernel row and per 4 taps of it, one `vpermb` gathers
//! each output's 4 input bytes and one `vpdpbusd` adds their products with the weight bytes.
//!
//! A 5x5 window by rows is 10 words, 3 of their 40 bytes weighing 0. Its first 4 rows are read
//! by columns instead: one `vpermt2b` lays out 16 input columns' words of the 4 rows' bytes,
//! and each of the window's 5 columns is then those words shifted by its offset (`valignd`)
//! and one `vpdpbusd`; with the last row's 2 words, 7 products and 8 shuffles where rows took
//! 10 of each. PicoDet's 5x5 depthwise layers took 4% less time (2 threads). Reading the words
//! from memory at their offsets instead of shifting them was a third slower: a load across two
//! recent stores waits for them.

use super::{Channel, Geometry, Out, BLOCKS, LANES};
use std::arch::x86_64::*;

/// Lane `l`, byte `b` of the word `q` of a kernel row reads the input byte
/// `l · stride + 4q + b`: by column stride (1 or 2) and word, made once rather than on every
/// output row.
const INDICES: [[[u8; 64]; 2]; 2] = {
    let mut table = [[[0u8; 64]; 2]; 2];
    let mut s = 0;
    while s < 2 {
        let mut q = 0;
        while q < 2 {
            let mut i = 0;
            while i < 64 {
                table[s][q][i] = ((i / 4) * (s + 1) + 4 * q + i % 4) as u8;
                i += 1;
            }
            q += 1;
        }
        s += 1;
    }
    table
};

/// Byte `4l + k` of the words of input columns, from two vectors of two rows of 32 bytes each
/// (row `k` at byte `64 · (k / 2) + 32 · (k % 2)`): by column stride, and half (stride 1: the
/// 16 columns from `16 · half`) or phase (stride 2: columns `2l + phase`).
const COLUMN_INDICES: [[[u8; 64]; 2]; 2] = {
    let mut table = [[[0u8; 64]; 2]; 2];
    let mut s = 0;
    while s < 2 {
        let mut p = 0;
        while p < 2 {
            let mut i = 0;
            while i < 64 {
                let (l, k) = (i / 4, i % 4);
                let column = if s == 0 { l + 16 * p } else { 2 * l + p };
                table[s][p][i] = (64 * (k / 2) + 32 * (k % 2) + column) as u8;
                i += 1;
            }
            p += 1;
        }
        s += 1;
    }
    table
};

/// [`super::portable_row`] up to 64 outputs at a time.
///
/// # Safety
/// The CPU must have AVX-512F, BW, VNNI and VBMI, the column stride be 1 or 2, and every
/// row of `input` hold 64 bytes from each block's first tap.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
pub unsafe fn row(geo: &Geometry, ch: &Channel, (input, stride): (&[u8], usize), mut out: Out) {
    let table = &INDICES[geo.sw - 1];
    // SAFETY: 64 bytes each.
    let indices = unsafe {
        [
            _mm512_loadu_si512(table[0].as_ptr().cast()),
            _mm512_loadu_si512(table[1].as_ptr().cast()),
        ]
    };
    let at = Blocks {
        geo,
        ch,
        input,
        stride,
        indices,
    };
    let mut x0 = 0;
    while x0 < out.len() {
        // Only the blocks that hold outputs: a row of 26 (PicoDet's 26x26 planes) is two,
        // where four ran at 0.087 ms against the float stencil's 0.056 (5x5, 192 channels).
        // SAFETY: the caller's promise.
        unsafe {
            match (out.len() - x0).div_ceil(LANES) {
                1 => at.sums::<1>(x0, &mut out),
                2 => at.sums::<2>(x0, &mut out),
                3 => at.sums::<3>(x0, &mut out),
                _ => at.sums::<BLOCKS>(x0, &mut out),
            }
        }
        x0 += LANES * BLOCKS;
    }
}

/// What [`row`] reads.
struct Blocks<'a> {
    geo: &'a Geometry,
    ch: &'a Channel<'a>,
    input: &'a [u8],
    stride: usize,
    indices: [__m512i; 2],
}

impl Blocks<'_> {
    /// Outputs `x0..x0 + 16·B` of the row (those below `out.len()` stored), in `B`
    /// vectors side by side, so that their dependency chains overlap. PicoDet's windows,
    /// 3x3 (one word a row) and 5x5 (two), get loops of known lengths, unrolled: counted at
    /// run time, their branches stood between every few permutations.
    ///
    /// # Safety
    /// As [`row`]'s.
    #[inline(always)]
    unsafe fn sums<const B: usize>(&self, x0: usize, out: &mut Out) {
        // SAFETY: the caller's promise.
        unsafe {
            match (self.geo.kh, self.ch.quads) {
                (3, 1) => self.sums_of::<B>(x0, out, (3, 1)),
                (5, 2) if !self.ch.columns.is_empty() => match self.geo.sw {
                    1 => self.sums_by_columns::<B, 1>(x0, out),
                    _ => self.sums_by_columns::<B, 2>(x0, out),
                },
                (5, 2) => self.sums_of::<B>(x0, out, (5, 2)),
                window => self.sums_of::<B>(x0, out, window),
            }
        }
    }

    /// [`Blocks::sums`] for windows of `kh` rows of `quads` words.
    ///
    /// # Safety
    /// As [`row`]'s.
    #[inline(always)]
    unsafe fn sums_of<const B: usize>(
        &self,
        x0: usize,
        out: &mut Out,
        (kh, quads): (usize, usize),
    ) {
        // SAFETY: the caller's promise.
        unsafe {
            let mut sums = [_mm512_setzero_si512(); B];
            for r in 0..kh {
                self.add_row(r, x0, (r * quads, quads), &mut sums);
            }
            self.finish(x0, sums, out);
        }
    }

    /// [`Blocks::sums`] of a 5x5 window at column stride `SW`: its first 4 rows by columns
    /// (the module's note), the last by its 2 words.
    ///
    /// # Safety
    /// As [`row`]'s.
    #[inline(always)]
    unsafe fn sums_by_columns<const B: usize, const SW: usize>(&self, x0: usize, out: &mut Out) {
        let table = &COLUMN_INDICES[SW - 1];
        // SAFETY: the caller's CPU has the instructions. The loads are 32 bytes of rows 0 to 3
        // from column `x0 · SW + 32 · g`, ending at most `(16 · B + 32) · SW` bytes past the
        // first block's first tap (`g` below `(B + 2) / 2` at stride 1, `B + 1` at stride 2),
        // within the 64 bytes past each block's first tap the caller promised; then those of
        // `add_row` for row 4.
        unsafe {
            let index = [
                _mm512_loadu_si512(table[0].as_ptr().cast()),
                _mm512_loadu_si512(table[1].as_ptr().cast()),
            ];
            let pair = |r: usize, c: usize| {
                let at = |r: usize| self.input[r * self.stride + c..].as_ptr().cast();
                let low = _mm512_castsi256_si512(_mm256_loadu_si256(at(r)));
                _mm512_inserti64x4::<1>(low, _mm256_loadu_si256(at(r + 1)))
            };
            // Stride 1: the words of 16 columns a vector, in one run. Stride 2: those of the
            // even columns in the first, of the odd ones in the second. Vector `b + 1` holds
            // what block `b` reads past its own 16.
            let mut words = [[_mm512_setzero_si512(); BLOCKS + 2]; 2];
            let groups = if SW == 1 { (B + 2) / 2 } else { B + 1 };
            for g in 0..groups {
                let c = x0 * SW + 32 * g;
                let (top, bottom) = (pair(0, c), pair(2, c));
                let halves = index.map(|i| _mm512_permutex2var_epi8(top, i, bottom));
                if SW == 1 {
                    [words[0][2 * g], words[0][2 * g + 1]] = halves;
                } else {
                    [words[0][g], words[1][g]] = halves;
                }
            }
            let mut sums = [_mm512_setzero_si512(); B];
            for (j, &word) in self.ch.columns[..5].iter().enumerate() {
                let w = _mm512_set1_epi32(word);
                let (phase, shift) = if SW == 1 { (0, j) } else { (j % 2, j / 2) };
                for (b, sum) in sums.iter_mut().enumerate() {
                    let (low, high) = (words[phase][b], words[phase][b + 1]);
                    let taps = match shift {
                        0 => low,
                        1 => _mm512_alignr_epi32::<1>(high, low),
                        2 => _mm512_alignr_epi32::<2>(high, low),
                        3 => _mm512_alignr_epi32::<3>(high, low),
                        _ => _mm512_alignr_epi32::<4>(high, low),
                    };
                    *sum = _mm512_dpbusd_epi32(*sum, taps, w);
                }
            }
            self.add_row(4, x0, (8, 2), &mut sums);
            self.finish(x0, sums, out);
        }
    }

    /// Adds to `sums` the products of kernel row `r` by its words `ch.words[first..][..count]`:
    /// per word, one `vpermb` gathering each output's 4 input bytes and one `vpdpbusd`.
    ///
    /// # Safety
    /// As [`row`]'s: the loads are the 64 bytes from each block's first tap of row `r`.
    #[inline(always)]
    unsafe fn add_row<const B: usize>(
        &self,
        r: usize,
        x0: usize,
        (first, count): (usize, usize),
        sums: &mut [__m512i; B],
    ) {
        let sw = self.geo.sw;
        // SAFETY: the caller's CPU has the instructions and the 64 bytes it promised.
        unsafe {
            let row = self.input[r * self.stride + x0 * sw..].as_ptr();
            for (q, &word) in self.ch.words[first..first + count].iter().enumerate() {
                let w = _mm512_set1_epi32(word);
                for (b, sum) in sums.iter_mut().enumerate() {
                    let bytes = _mm512_loadu_si512(row.add(b * LANES * sw).cast());
                    let taps = _mm512_permutexvar_epi8(self.indices[q], bytes);
                    *sum = _mm512_dpbusd_epi32(*sum, taps, w);
                }
            }
        }
    }

    /// Stores the sums of outputs `x0..x0 + 16·B` (those below `out.len()`).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline(always)]
    unsafe fn finish<const B: usize>(&self, x0: usize, sums: [__m512i; B], out: &mut Out) {
        let ch = self.ch;
        // SAFETY: the caller's CPU has the instructions; the stores are masked to `out`.
        unsafe {
            let (fix, scale) = (_mm512_set1_epi32(ch.fix), _mm512_set1_ps(ch.scale));
            for (b, sum) in sums.into_iter().enumerate() {
                let at = x0 + b * LANES;
                if at >= out.len() {
                    break;
                }
                let lanes = (out.len() - at).min(LANES);
                let mask = if lanes == LANES {
                    u16::MAX
                } else {
                    (1u16 << lanes) - 1
                };
                match out {
                    Out::Floats(out) => {
                        let value = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, fix));
                        let value = _mm512_mul_ps(value, scale);
                        _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), mask, value);
                    }
                    Out::Sums(out) => {
                        let to = out.as_mut_ptr().add(at);
                        let sum = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, to), sum);
                        _mm512_mask_storeu_epi32(to, mask, sum);
                    }
                }
            }
        }
    }
}
