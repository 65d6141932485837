//! The integer GEMM of an int8 convolution tile: `out[m × n] = (W[rows] · (U − offset)) · scale`,
//! where `W` holds a layer's int8 weights (zero points 0), `U` the tile's quantized activations
//! stored as unsigned bytes, and the sums are exact 32-bit integers.
//!
//! The layouts are those of AVX-512 VNNI's `vpdpbusd`, which multiplies 4 unsigned bytes by 4
//! signed ones and adds the 4 products to a 32-bit lane: the depth `k` is cut into quads, the
//! weights are packed once per plan as panels of [`MR`] rows (`[quad][row]`, 4 bytes each) and
//! a tile's activations as blocks of [`NR`] columns (`[quad][column]`, 4 bytes each). An int8
//! activation `q` is stored as the byte `q + 128`, so the sum over a row is off by `offset ·
//! Σ w`, which is subtracted; a padding tap, stored as `offset`, contributes exactly 0. Without
//! VNNI the same layouts go through a portable loop: integer sums are exact either way, so every
//! instruction set gives the same bits.
//!
//! AMX's int8 product (`tdpbsud`) would take these layouts as the bf16 tiles take theirs
//! (`amx.rs`), but int8 layers stay on VNNI: tried on YOLOv8n's int8 plan (1 thread), the tiles
//! ran the GEMMs of the deep 1x1 layers up to 3 times faster and the model 7% slower. Those
//! layers' time goes mostly to quantizing, packing and the epilogue, and in the runs with
//! tiles every other layer, Softmax included, took 5-10% longer.

use super::buffers;
use super::isa::Isa;

mod pack;
pub(crate) use pack::pack_columns;

/// Rows of the weight a kernel call covers; row blocks of a tile start at multiples of this.
pub(crate) const MR: usize = 8;
/// Columns a kernel call covers: two 16-lane vectors.
pub(crate) const NR: usize = 32;
/// Bytes of one quad of a column block.
const QUAD: usize = NR * 4;

/// How a layer quantizes its input: ONNX QuantizeLinear per tensor, `saturate(round(x / scale)
/// + zero)` with ties to even and NaN to 0, to int8 (`signed`) or uint8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Quantizer {
    pub scale: f32,
    pub zero: i32,
    pub signed: bool,
}

impl Quantizer {
    pub(crate) fn bounds(self) -> (f32, f32) {
        if self.signed {
            (-128.0, 127.0)
        } else {
            (0.0, 255.0)
        }
    }

    pub(crate) fn shift(self) -> i32 {
        if self.signed {
            128
        } else {
            0
        }
    }

    /// The byte stored for `x`: its quantized value, moved into 0..=255 for int8.
    #[inline(always)]
    pub fn byte(self, x: f32) -> u8 {
        self.byte_of(x / self.scale)
    }

    /// The value byte `b` stands for, as DequantizeLinear computes it: `(q - zero) · scale`.
    #[inline(always)]
    pub fn value(self, b: u8) -> f32 {
        (b as i32 - self.offset()) as f32 * self.scale
    }

    /// [`Quantizer::byte`] from the scale's reciprocal, where [`Quantizer::inverse`] gives one.
    #[inline(always)]
    pub fn byte_by_inverse(self, x: f32, inverse: f32) -> u8 {
        let q = x * inverse;
        // Markstein's correction: the residual `x - q·scale` is exact in a fused multiply-add,
        // and one more step from it rounds to the quotient the division rounds to.
        let q = if q.is_finite() {
            (-q).mul_add(self.scale, x).mul_add(inverse, q)
        } else {
            q
        };
        self.byte_of(q)
    }

    /// `1 / scale` when [`Quantizer::byte_by_inverse`] gives the division's bytes for every
    /// input: for scales in [2^-60, 2^60] the residual is exact wherever the quotient is not
    /// far below 1/2, and where it is, both round to 0 (the test below checks the boundaries
    /// between bytes; 8e8 random inputs and scales agreed). A division per element was a tenth
    /// of YOLOv8n's int8 time.
    pub fn inverse(self) -> Option<f32> {
        const LOW: f32 = 1.0 / (1u64 << 60) as f32;
        const HIGH: f32 = (1u64 << 60) as f32;
        (LOW..=HIGH).contains(&self.scale).then(|| 1.0 / self.scale)
    }

    #[inline(always)]
    fn byte_of(self, quotient: f32) -> u8 {
        let t = quotient.round_ties_even() + self.zero as f32;
        let (lo, hi) = self.bounds();
        let q = if t.is_nan() { 0.0 } else { t.clamp(lo, hi) };
        // SAFETY: `q` is an integer in -128..=255, so the conversion is exact; the checked `as`
        // kept the loops that call this from vectorizing.
        (unsafe { q.to_int_unchecked::<i32>() } + self.shift()) as u8
    }

    /// The stored byte that stands for the value 0 (the zero point, moved like the values).
    pub fn offset(self) -> i32 {
        self.zero + self.shift()
    }
}

/// How a tile's integer sums become floats: `(sum - offset · Σ w) · scales[row]`, `offset` the
/// byte that stands for 0 ([`Quantizer::offset`]).
#[derive(Clone, Copy)]
pub(crate) struct Scaling<'a> {
    pub offset: i32,
    pub scales: &'a [f32],
}

/// A convolution's int8 weights, every group's `rows × k` matrix packed in panels of [`MR`]
/// rows, with each row's sum for the offset correction.
#[derive(Debug)]
pub(crate) struct Int8Weights {
    groups: Vec<Vec<i32>>,
    rows: usize,
    k: usize,
    /// Σ w of each output channel, over all groups.
    sums: Vec<i32>,
}

impl Int8Weights {
    /// `weight` holds the groups' matrices of `rows × k`, one after another.
    pub fn new(weight: &[i8], rows: usize, k: usize) -> Int8Weights {
        let quads = k.div_ceil(4);
        let panels = rows.div_ceil(MR);
        let pack = |w: &[i8]| {
            let mut packed = vec![0i32; panels * quads * MR];
            for (r, row) in w.chunks_exact(k).enumerate() {
                for (q, four) in row.chunks(4).enumerate() {
                    let mut bytes = [0u8; 4];
                    for (b, &v) in bytes.iter_mut().zip(four) {
                        *b = v as u8;
                    }
                    packed[((r / MR) * quads + q) * MR + r % MR] = i32::from_le_bytes(bytes);
                }
            }
            packed
        };
        Int8Weights {
            groups: weight.chunks_exact(rows * k).map(pack).collect(),
            rows,
            k,
            sums: weight
                .chunks_exact(k)
                .map(|row| row.iter().map(|&v| v as i32).sum())
                .collect(),
        }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Rows `r0..r0 + out.len()` of group `group` times the packed columns `cols` (of
    /// [`pack_columns`]), turned into floats by `scaling`, written to `out`. `r0` is a multiple
    /// of [`MR`].
    pub fn multiply(
        &self,
        isa: Isa,
        (group, r0): (usize, usize),
        cols: &[u8],
        scaling: Scaling,
        out: &mut [&mut [f32]],
    ) {
        let Scaling { offset, scales } = scaling;
        let (m, quads) = (out.len(), self.k.div_ceil(4));
        let n = out.first().map_or(0, |r| r.len());
        assert!(
            r0.is_multiple_of(MR)
                && r0 + m <= self.rows
                && scales.len() == m
                && out.iter().all(|r| r.len() == n)
                && cols.len() >= n.div_ceil(NR) * quads * QUAD + 63
        );
        let first = group * self.rows + r0;
        let cols = &cols[buffers::aligned_start(cols.as_ptr())..];
        let weights = &self.groups[group];
        for p0 in (0..m).step_by(MR) {
            let rows = MR.min(m - p0);
            let panel = &weights[((r0 + p0) / MR) * quads * MR..][..quads * MR];
            let mut fix = [(0, 0.0); MR];
            for (i, f) in fix.iter_mut().enumerate().take(rows) {
                *f = (offset * self.sums[first + p0 + i], scales[p0 + i]);
            }
            let out = &mut out[p0..p0 + rows];
            for (b, block) in cols
                .chunks_exact(quads * QUAD)
                .take(n.div_ceil(NR))
                .enumerate()
            {
                let c0 = b * NR;
                let width = NR.min(n - c0);
                #[cfg(target_arch = "x86_64")]
                if isa.vnni() {
                    // SAFETY: an `Isa` with VNNI is only made on a machine that has it; the
                    // panel and block hold `quads` quads each, and `fix` covers `out`'s rows.
                    unsafe { vnni::block(panel, block, quads, &fix, c0, width, out) };
                    continue;
                }
                portable_block(panel, block, quads, &fix, c0, width, out);
            }
        }
        let _ = isa;
    }
}

/// One panel times one column block, through plain integer loops.
fn portable_block(
    panel: &[i32],
    block: &[u8],
    quads: usize,
    fix: &[(i32, f32); MR],
    c0: usize,
    width: usize,
    out: &mut [&mut [f32]],
) {
    let mut acc = [[0i32; NR]; MR];
    for q in 0..quads {
        let u = &block[q * QUAD..(q + 1) * QUAD];
        for (row, &w) in acc.iter_mut().zip(&panel[q * MR..(q + 1) * MR]) {
            let w = w.to_le_bytes().map(|b| b as i8 as i32);
            for (a, u) in row.iter_mut().zip(u.chunks_exact(4)) {
                *a += u[0] as i32 * w[0]
                    + u[1] as i32 * w[1]
                    + u[2] as i32 * w[2]
                    + u[3] as i32 * w[3];
            }
        }
    }
    for ((row, &(offset, scale)), sums) in out.iter_mut().zip(fix).zip(&acc) {
        for (o, &s) in row[c0..c0 + width].iter_mut().zip(sums) {
            *o = (s - offset) as f32 * scale;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{MR, NR, QUAD};
    use std::arch::x86_64::*;

    /// One panel of [`MR`] rows times one block of [`NR`] columns, 16 accumulators of
    /// `vpdpbusd`; the first `width` columns of each row of `out` are stored from `c0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn block(
        panel: &[i32],
        block: &[u8],
        quads: usize,
        fix: &[(i32, f32); MR],
        c0: usize,
        width: usize,
        out: &mut [&mut [f32]],
    ) {
        assert!(panel.len() >= quads * MR && block.len() >= quads * QUAD && width <= NR);
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        let (a, u) = (panel.as_ptr(), block.as_ptr());
        for q in 0..quads {
            // SAFETY: quad `q` of the block and panel are in bounds, as asserted.
            let (u0, u1) = unsafe {
                (
                    _mm512_loadu_si512(u.add(q * QUAD).cast()),
                    _mm512_loadu_si512(u.add(q * QUAD + 64).cast()),
                )
            };
            for (m, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let w = _mm512_set1_epi32(unsafe { *a.add(q * MR + m) });
                acc[0] = _mm512_dpbusd_epi32(acc[0], u0, w);
                acc[1] = _mm512_dpbusd_epi32(acc[1], u1, w);
            }
        }
        for ((row, &(offset, scale)), acc) in out.iter_mut().zip(fix).zip(&acc) {
            let (offset, scale) = (_mm512_set1_epi32(offset), _mm512_set1_ps(scale));
            for (half, &v) in acc.iter().enumerate() {
                let start = half * 16;
                if start >= width {
                    break;
                }
                let lanes = 16.min(width - start);
                let y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, offset)), scale);
                let dst = row[c0 + start..c0 + start + lanes].as_mut_ptr();
                let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
                // SAFETY: `lanes` floats of the row are left from `dst`.
                unsafe { _mm512_mask_storeu_ps(dst, mask, y) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator of bytes.
    pub(super) fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    /// Every instruction set, VNNI or not, gives the exact integer product (computed here in
    /// i64 from the unpacked values), scaled, for depths that are and are not multiples of 4,
    /// tails of columns and rows, extreme bytes and both offsets.
    #[test]
    fn every_isa_computes_the_exact_integer_product() {
        for (rows, k, n, offset) in [
            (8, 16, 32, 128),
            (13, 27, 45, 128),
            (3, 5, 7, 100),
            (24, 300, 70, 0),
            (40, 70, 33, 128),
        ] {
            let mut weight: Vec<i8> = bytes(1, rows * k).into_iter().map(|b| b as i8).collect();
            weight[0] = -128;
            weight[1] = 127;
            let mut u = bytes(2, k * n);
            u[0] = 255;
            u[1] = 0;
            let scales: Vec<f32> = (0..rows).map(|r| 0.001 * (r + 1) as f32).collect();
            let expected: Vec<f32> = (0..rows * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    let sum: i64 = (0..k)
                        .map(|p| weight[r * k + p] as i64 * (u[p * n + c] as i64 - offset as i64))
                        .sum();
                    sum as f32 * scales[r]
                })
                .collect();
            let packed = Int8Weights::new(&weight, rows, k);
            let row_starts: Vec<usize> = (0..k).map(|p| p * n).collect();
            for isa in Isa::available() {
                let mut cols = Vec::new();
                pack_columns(isa, &u, &row_starts, n, &mut cols);
                let mut out = vec![f32::NAN; rows * n];
                let mut slices: Vec<&mut [f32]> = out.chunks_exact_mut(n).collect();
                let scaling = Scaling {
                    offset,
                    scales: &scales,
                };
                packed.multiply(isa, (0, 0), &cols, scaling, &mut slices);
                let same = out
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{isa:?} {rows}x{k}x{n}: {:?} against {:?}",
                    &out[..8],
                    &expected[..8]
                );
                // The rows from the second panel on, as a task cut at a panel computes them.
                if rows > MR {
                    let mut slices: Vec<&mut [f32]> = out.chunks_exact_mut(n).skip(MR).collect();
                    slices.iter_mut().for_each(|r| r.fill(f32::NAN));
                    let scaling = Scaling {
                        offset,
                        scales: &scales[MR..],
                    };
                    packed.multiply(isa, (0, MR), &cols, scaling, &mut slices);
                    assert!(out
                        .iter()
                        .zip(&expected)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }
        }
    }

    /// The stored byte of each value is QuantizeLinear's, shifted: ties to even, saturation
    /// at both ends, NaN to zero.
    #[test]
    fn bytes_are_quantize_linear_s() {
        let int8 = Quantizer {
            scale: 0.5,
            zero: 0,
            signed: true,
        };
        let cases = [
            (0.25, 128),
            (0.75, 130),
            (-0.25, 128),
            (1e9, 255),
            (-1e9, 0),
            (f32::NAN, 128),
            (f32::INFINITY, 255),
        ];
        for (x, byte) in cases {
            assert_eq!(int8.byte(x), byte, "int8 of {x}");
        }
        let uint8 = Quantizer {
            scale: 0.5,
            zero: 100,
            signed: false,
        };
        for (x, byte) in [(0.0, 100), (-100.0, 0), (100.0, 255), (f32::NAN, 0)] {
            assert_eq!(uint8.byte(x), byte, "uint8 of {x}");
        }
        assert_eq!((int8.offset(), uint8.offset()), (128, 100));
    }

    /// The reciprocal's bytes are the division's: at and around every boundary between two
    /// bytes (the quotient's halves, a few ulps either side), for scales across the range
    /// [`Quantizer::inverse`] takes, and at the special values.
    #[test]
    fn bytes_by_the_inverse_are_the_division_s() {
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..2000 {
            let bits = next();
            let exponent = 127 - 60 + (bits % 120) as u32;
            let scale = f32::from_bits(exponent << 23 | (bits >> 8) as u32 & 0x7f_ffff);
            let q = Quantizer {
                scale: if i == 0 { 1.0 / 127.0 } else { scale },
                zero: (bits >> 40) as i32 % 7,
                signed: i % 2 == 0,
            };
            let inverse = q.inverse().expect("a scale in range");
            let mut inputs = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-40];
            for n in -260..260 {
                let boundary = (n as f32 + 0.5) * q.scale;
                for ulps in -3i32..=3 {
                    inputs.push(f32::from_bits(boundary.to_bits().wrapping_add_signed(ulps)));
                }
            }
            for x in inputs {
                assert_eq!(
                    q.byte_by_inverse(x, inverse),
                    q.byte(x),
                    "{x:e} at scale {:e}",
                    q.scale
                );
            }
        }
        let out_of_range = Quantizer {
            scale: 1e-30,
            zero: 0,
            signed: true,
        };
        assert_eq!(out_of_range.inverse(), None);
    }
}
