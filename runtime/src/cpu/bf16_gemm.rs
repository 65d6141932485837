//! The matrix product of bf16 layers: a bf16 weight times bf16 columns, summed in f32.
//!
//! Depth goes in pairs. A packed weight holds, per panel of [`MR`] rows and per pair `p` of
//! depth, one 32-bit word a row: `w[r][2p]` in its low half and `w[r][2p + 1]` in its high half.
//! Packed columns hold, per block of [`NR`] columns and per pair, one such word a column. AVX-512
//! BF16's `vdpbf16ps` multiplies a broadcast weight word by 16 column words and adds both
//! products to 16 f32 sums: first the odd depth's product, then the even one's, each rounded
//! once, since the product of two bf16 values is exact in f32. That is two fused multiply-adds
//! in that order, which is what the fallback computes, so both give the same bits for every
//! input whose products and sums are normal floats or zero (`vdpbf16ps` flushes subnormal
//! inputs and results to zero; the fallback keeps them). A missing last depth of an odd depth
//! is zero in the weight, and adds an exact zero.
//!
//! Where the machine has AMX, its tiles (`amx.rs`) take the same packed columns, each block's
//! depth padded with zero pairs to whole chunks of theirs. `tdpbf16ps` adds a pair's products
//! in an order of its own and flushes subnormals, so its sums may differ from the others' in
//! the last bits.

use super::amx::{self, Sums, TileWeights, Tiles};
use super::buffers;
use super::isa::Isa;
use crate::bf16;

/// Output rows of a panel: the broadcast weights of one pair.
pub(crate) const MR: usize = 8;
/// Columns of a block: two vectors of 16.
pub(crate) const NR: usize = 32;
const _: () = assert!(NR == amx::COLS);

/// A bf16 layer's weight, packed once per plan for [`multiply`](Bf16Weights::multiply).
#[derive(Debug)]
pub(crate) struct Bf16Weights {
    groups: Vec<Vec<u32>>,
    rows: usize,
    k: usize,
    /// The weight laid out for AMX, where the machine has it.
    tiles: Option<TileWeights>,
}

/// `lo` in the low half of a word, `hi` in the high half.
fn pair(lo: bf16, hi: bf16) -> u32 {
    lo.to_bits() as u32 | (hi.to_bits() as u32) << 16
}

impl Bf16Weights {
    /// `weight` holds the groups' matrices of `rows × k`, one after another.
    pub fn new(weight: &[bf16], rows: usize, k: usize) -> Bf16Weights {
        let pairs = k.div_ceil(2);
        let panels = rows.div_ceil(MR);
        let pack = |w: &[bf16]| {
            let mut packed = vec![0u32; panels * pairs * MR];
            for (r, row) in w.chunks_exact(k).enumerate() {
                for (p, two) in row.chunks(2).enumerate() {
                    let hi = two.get(1).copied().unwrap_or(bf16::ZERO);
                    packed[((r / MR) * pairs + p) * MR + r % MR] = pair(two[0], hi);
                }
            }
            packed
        };
        let word = |g: usize, r: usize, p: usize| {
            let row = &weight[(g * rows + r) * k..][..k];
            pair(
                row[2 * p],
                row.get(2 * p + 1).copied().unwrap_or(bf16::ZERO),
            )
        };
        let groups = weight.len() / (rows * k).max(1);
        Bf16Weights {
            groups: weight.chunks_exact(rows * k).map(pack).collect(),
            tiles: amx::usable().then(|| TileWeights::new((groups, rows, pairs), word)),
            rows,
            k,
        }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Rows `r0..r0 + out.len()` of group `group` times the packed columns `cols` (of
    /// [`pack_columns`]), written to `out`. `r0` is a multiple of [`MR`].
    pub fn multiply(
        &self,
        isa: Isa,
        (group, r0): (usize, usize),
        cols: &[u32],
        out: &mut [&mut [f32]],
    ) {
        let (m, pairs) = (out.len(), self.k.div_ceil(2));
        let n = out.first().map_or(0, |r| r.len());
        let stride = amx::block_units(isa, pairs);
        assert!(
            r0.is_multiple_of(MR)
                && r0 + m <= self.rows
                && out.iter().all(|r| r.len() == n)
                && cols.len() >= n.div_ceil(NR) * stride * NR + 15
        );
        let cols = &cols[buffers::aligned_start(cols.as_ptr())..];
        if let (Some(tiles), Some(weights)) = (Tiles::load(isa, pairs), &self.tiles) {
            let mut sums = Sums::new();
            for p0 in (0..m).step_by(2 * amx::ROWS) {
                let rows = (2 * amx::ROWS).min(m - p0);
                let at = (group, r0 + p0, rows);
                for (b, block) in cols
                    .chunks_exact(stride * NR)
                    .take(n.div_ceil(NR))
                    .enumerate()
                {
                    tiles.multiply(weights, at, block, &mut sums);
                    let c0 = b * NR;
                    let width = NR.min(n - c0);
                    for (i, sums) in sums.0.iter().enumerate().take(rows) {
                        out[p0 + i][c0..c0 + width].copy_from_slice(&sums[..width]);
                    }
                }
            }
            return;
        }
        let weights = &self.groups[group];
        for p0 in (0..m).step_by(MR) {
            let rows = MR.min(m - p0);
            let panel = &weights[((r0 + p0) / MR) * pairs * MR..][..pairs * MR];
            let out = &mut out[p0..p0 + rows];
            for (b, block) in cols
                .chunks_exact(stride * NR)
                .take(n.div_ceil(NR))
                .enumerate()
            {
                let c0 = b * NR;
                let width = NR.min(n - c0);
                #[cfg(target_arch = "x86_64")]
                if isa.bf16() {
                    // SAFETY: an `Isa` with BF16 is only made on a machine that has it; the
                    // panel and block hold `pairs` pairs each.
                    unsafe { dot::block(panel, block, pairs, c0, width, out) };
                    continue;
                }
                isa.widest(|| portable_block(panel, block, pairs, c0, width, out));
            }
        }
    }
}

/// One panel times one column block in f32 fused multiply-adds, the odd depth of each pair
/// first, as `vdpbf16ps` adds them.
#[inline(always)]
fn portable_block(
    panel: &[u32],
    block: &[u32],
    pairs: usize,
    c0: usize,
    width: usize,
    out: &mut [&mut [f32]],
) {
    let mut acc = [[0f32; NR]; MR];
    let lo = |w: u32| f32::from_bits(w << 16);
    let hi = |w: u32| f32::from_bits(w & 0xffff_0000);
    for p in 0..pairs {
        let x = &block[p * NR..(p + 1) * NR];
        for (row, &w) in acc.iter_mut().zip(&panel[p * MR..(p + 1) * MR]) {
            let (w_lo, w_hi) = (lo(w), hi(w));
            for (a, &x) in row.iter_mut().zip(x) {
                *a = w_hi.mul_add(hi(x), *a);
                *a = w_lo.mul_add(lo(x), *a);
            }
        }
    }
    for (row, sums) in out.iter_mut().zip(&acc) {
        row[c0..c0 + width].copy_from_slice(&sums[..width]);
    }
}

/// Lays out `n` columns of the `k` rows of bf16 values `src[rows[i]..]` in `dst` as blocks of
/// [`NR`] columns of depth pairs (see the module documentation), from the first 64-byte
/// boundary of `dst` ([`buffers::aligned_start`], which [`Bf16Weights::multiply`] finds
/// again); the depth past an odd `k` is zero.
pub(crate) fn pack_columns(isa: Isa, src: &[bf16], rows: &[usize], n: usize, dst: &mut Vec<u32>) {
    let pairs = rows.len().div_ceil(2);
    let stride = amx::block_units(isa, pairs);
    let blocks = n.div_ceil(NR);
    assert!(n == 0 || rows.iter().all(|&r| r + n <= src.len()));
    // Not cleared: every word the kernel's stored outputs depend on is written below, and the
    // rest (columns past `n`) only reaches unstored columns, each lane being its own column;
    // the pairs the tiles add are zeroed (a stale infinity times their zero weight is NaN).
    dst.resize(blocks * stride * NR + 15, 0);
    let start = buffers::aligned_start(dst.as_ptr());
    let dst = &mut dst[start..][..blocks * stride * NR];
    if stride > pairs {
        for block in dst.chunks_exact_mut(stride * NR) {
            block[pairs * NR..].fill(0);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if isa.vnni() {
        // SAFETY: an `Isa` with VNNI (and so AVX-512BW) is only made on a machine that has it;
        // the rows hold `n` values each and `dst` holds every block.
        return unsafe { avx512::pack(src, rows, n, stride, dst) };
    }
    let _ = isa;
    for (b, block) in dst.chunks_exact_mut(stride * NR).enumerate() {
        let c0 = b * NR;
        let width = NR.min(n - c0);
        for (p, two) in rows.chunks(2).enumerate() {
            let words = &mut block[p * NR..p * NR + width];
            let lo = &src[two[0] + c0..two[0] + c0 + width];
            match two.get(1) {
                Some(&r) => {
                    let hi = &src[r + c0..r + c0 + width];
                    for ((w, &l), &h) in words.iter_mut().zip(lo).zip(hi) {
                        *w = pair(l, h);
                    }
                }
                None => {
                    for (w, &l) in words.iter_mut().zip(lo) {
                        *w = pair(l, bf16::ZERO);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::NR;
    use crate::bf16;
    use std::arch::x86_64::*;

    /// See [`super::pack_columns`]: 16 columns of two rows widened to 32-bit lanes, the odd
    /// row's shifted into the upper halves, in blocks of `stride` pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack(src: &[bf16], rows: &[usize], n: usize, stride: usize, dst: &mut [u32]) {
        let at = |r: usize, c: usize| src[r + c..].as_ptr().cast::<i16>();
        for (b, block) in dst.chunks_exact_mut(stride * NR).enumerate() {
            for half in 0..NR / 16 {
                let c0 = b * NR + half * 16;
                if c0 >= n {
                    break;
                }
                let lanes = 16.min(n - c0);
                let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
                for (p, two) in rows.chunks(2).enumerate() {
                    // SAFETY: the caller checked that each row holds `n` values from its start,
                    // and the mask reads only those.
                    let lo = unsafe { _mm256_maskz_loadu_epi16(mask, at(two[0], c0)) };
                    let mut words = _mm512_cvtepu16_epi32(lo);
                    if let Some(&r) = two.get(1) {
                        // SAFETY: as above.
                        let hi = unsafe { _mm256_maskz_loadu_epi16(mask, at(r, c0)) };
                        words = _mm512_or_si512(
                            words,
                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16),
                        );
                    }
                    let out = block[p * NR + half * 16..][..16].as_mut_ptr();
                    // SAFETY: 16 words of the pair are left from `out`.
                    unsafe { _mm512_storeu_si512(out.cast(), words) };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod dot {
    use super::{MR, NR};
    use std::arch::x86_64::*;
    use std::mem::transmute;

    /// One panel of [`MR`] rows times one block of [`NR`] columns, 16 accumulators of
    /// `vdpbf16ps`; the first `width` columns of each row of `out` are stored from `c0`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block(
        panel: &[u32],
        block: &[u32],
        pairs: usize,
        c0: usize,
        width: usize,
        out: &mut [&mut [f32]],
    ) {
        assert!(panel.len() >= pairs * MR && block.len() >= pairs * NR && width <= NR);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (a, x) = (panel.as_ptr(), block.as_ptr());
        for p in 0..pairs {
            // SAFETY: pair `p` of the block and panel is in bounds, as asserted; a vector of
            // 32 bf16 values has the bits of one of 16 words.
            let (x0, x1) = unsafe {
                (
                    transmute::<__m512i, __m512bh>(_mm512_loadu_si512(x.add(p * NR).cast())),
                    transmute::<__m512i, __m512bh>(_mm512_loadu_si512(x.add(p * NR + 16).cast())),
                )
            };
            for (m, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let w = unsafe { *a.add(p * MR + m) };
                // SAFETY: as above.
                let w = unsafe { transmute::<__m512i, __m512bh>(_mm512_set1_epi32(w as i32)) };
                acc[0] = _mm512_dpbf16_ps(acc[0], w, x0);
                acc[1] = _mm512_dpbf16_ps(acc[1], w, x1);
            }
        }
        for (row, acc) in out.iter_mut().zip(&acc) {
            for (half, &v) in acc.iter().enumerate() {
                let start = half * 16;
                if start >= width {
                    break;
                }
                let lanes = 16.min(width - start);
                let dst = row[c0 + start..c0 + start + lanes].as_mut_ptr();
                let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
                // SAFETY: `lanes` floats of the row are left from `dst`.
                unsafe { _mm512_mask_storeu_ps(dst, mask, v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normal bf16 values in ±[2^-8, 2^8), from a small deterministic generator: their products
    /// and sums stay normal, where `vdpbf16ps` and the fallback agree bit for bit.
    fn values(seed: u64, n: usize) -> Vec<bf16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let bits = (s >> 33) as u32;
                let exponent = 127 - 8 + (bits % 16);
                let sign = (bits >> 8) & 1;
                bf16::from_bits((sign << 15 | exponent << 7 | (bits >> 12) & 0x7f) as u16)
            })
            .collect()
    }

    /// Every instruction set but AMX gives the same bits, and every one the f64 product's up to
    /// the f32 sums' rounding; odd depths, a ragged last block, rows past a panel and past two
    /// AMX tiles, and a depth of several AMX chunks included.
    #[test]
    fn every_isa_computes_the_same_sums() {
        for (rows, k, n) in [
            (8, 2, 32),
            (13, 9, 45),
            (16, 27, 70),
            (5, 1, 3),
            (24, 64, 100),
            (40, 75, 33),
        ] {
            let w = values(1 + k as u64, rows * k);
            let x = values(7 + n as u64, k * n);
            let weights = Bf16Weights::new(&w, rows, k);
            let row_starts: Vec<usize> = (0..k).map(|i| i * n).collect();
            let mut results = Vec::new();
            for isa in Isa::available() {
                let mut cols = Vec::new();
                pack_columns(isa, &x, &row_starts, n, &mut cols);
                let mut out = vec![f32::NAN; rows * n];
                let mut out_rows: Vec<&mut [f32]> = out.chunks_exact_mut(n).collect();
                weights.multiply(isa, (0, 0), &cols, &mut out_rows);
                results.push((isa, out));
            }
            let (first, reference) = &results[0];
            for (isa, out) in results.iter().filter(|(isa, _)| !isa.amx()) {
                let same = out
                    .iter()
                    .zip(reference)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} differs from {first:?} at {rows}x{k}x{n}");
            }
            for (isa, out) in &results {
                for r in 0..rows {
                    for c in 0..n {
                        let exact: f64 = (0..k)
                            .map(|i| w[r * k + i].to_f64() * x[i * n + c].to_f64())
                            .sum();
                        let scale: f64 = (0..k)
                            .map(|i| (w[r * k + i].to_f64() * x[i * n + c].to_f64()).abs())
                            .sum();
                        let got = out[r * n + c] as f64;
                        assert!(
                            (got - exact).abs() <= scale * k as f64 * f32::EPSILON as f64,
                            "{isa:?} {rows}x{k}x{n} [{r}][{c}]: {got} against {exact}"
                        );
                    }
                }
            }
        }
    }
}
