//! The columns of an int8 tile laid out for `vpdpbusd` ([`super`]'s module documentation):
//! four rows of a column side by side, a block of [`NR`] columns at a time.

use super::{buffers, Isa, NR, QUAD};

/// Lays out `n` columns of the `k` rows of quantized bytes `src[rows[i]..]` in `dst` as blocks
/// of [`NR`] columns (see the module documentation), from the first 64-byte boundary of `dst`
/// ([`buffers::aligned_start`], which [`super::Int8Weights::multiply`] finds again).
pub(crate) fn pack_columns(isa: Isa, src: &[u8], rows: &[usize], n: usize, dst: &mut Vec<u8>) {
    let quads = rows.len().div_ceil(4);
    let blocks = n.div_ceil(NR);
    assert!(n == 0 || rows.iter().all(|&r| r + n <= src.len()));
    // Not cleared: every byte the kernel's stored outputs depend on is written below, and the
    // rest (depth past `k`, columns past `n`) only meets zero weights or unstored columns.
    dst.resize(blocks * quads * QUAD + 63, 0);
    let start = buffers::aligned_start(dst.as_ptr());
    let dst = &mut dst[start..][..blocks * quads * QUAD];
    #[cfg(target_arch = "x86_64")]
    if isa.vnni() {
        // SAFETY: an `Isa` with VNNI (and so AVX-512BW and VL) is only made on a machine that
        // has it, and VBMI is detected; the rows hold `n` bytes each and `dst` holds every
        // block.
        return unsafe {
            if std::arch::is_x86_feature_detected!("avx512vbmi") {
                avx512::pack_by_permutes(src, rows, n, dst)
            } else {
                avx512::pack(src, rows, n, dst)
            }
        };
    }
    let _ = isa;
    for (b, block) in dst.chunks_exact_mut(quads * QUAD).enumerate() {
        let c0 = b * NR;
        let width = NR.min(n - c0);
        for (k, &r) in rows.iter().enumerate() {
            let quad = &mut block[(k / 4) * QUAD..][..QUAD];
            for (c, &u) in src[r + c0..r + c0 + width].iter().enumerate() {
                quad[c * 4 + k % 4] = u;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{NR, QUAD};
    use std::arch::x86_64::*;

    /// See [`super::pack_columns`]: 16 columns of 4 rows widened to 32-bit lanes and
    /// interleaved with shifts.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack(src: &[u8], rows: &[usize], n: usize, dst: &mut [u8]) {
        let quads = rows.len().div_ceil(4);
        for (b, block) in dst.chunks_exact_mut(quads * QUAD).enumerate() {
            for half in 0..NR / 16 {
                let c0 = b * NR + half * 16;
                if c0 >= n {
                    break;
                }
                let lanes = 16.min(n - c0);
                let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
                for (quad, four) in rows.chunks(4).enumerate() {
                    let mut word = _mm512_setzero_si512();
                    for (i, &r) in four.iter().enumerate() {
                        // SAFETY: the caller checked that row `r` holds `n` bytes, and the mask
                        // reads only those.
                        let u =
                            unsafe { _mm_maskz_loadu_epi8(mask, src.as_ptr().add(r + c0).cast()) };
                        let v = _mm512_cvtepu8_epi32(u);
                        word = _mm512_or_si512(
                            word,
                            _mm512_sll_epi32(v, _mm_cvtsi32_si128(8 * i as i32)),
                        );
                    }
                    let at = block[quad * QUAD + half * 64..].as_mut_ptr();
                    // SAFETY: 64 bytes of the quad are left from `at`.
                    unsafe { _mm512_storeu_si512(at.cast(), word) };
                }
            }
        }
    }

    /// [`pack`] with VBMI: a quad of a block is two byte permutations of two sources, each the
    /// 32 columns of two rows, in 8 instructions where [`pack`]'s widening and shifts took 34.
    /// That packing was 7% of PicoDet's int8 plan.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW, VL and VBMI; the rows must hold `n` bytes each, and
    /// `dst` every block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    pub unsafe fn pack_by_permutes(src: &[u8], rows: &[usize], n: usize, dst: &mut [u8]) {
        let quads = rows.len().div_ceil(4);
        // Byte `4c + i` of a quad's first 64 bytes is column `c` of row `i`, which lies at
        // `32i + c` of the two sources; the second 64 bytes are columns 16 to 31.
        let index = |half: usize| {
            let mut idx = [0u8; 64];
            for (j, b) in idx.iter_mut().enumerate() {
                *b = ((j % 4) * 32 + half * 16 + j / 4) as u8;
            }
            // Hidden from the optimizer: seeing a constant interleave, LLVM rewrote the
            // permutation as 128-bit unpacks and inserts, 30 instructions, slower than
            // [`pack`].
            let idx = std::hint::black_box(idx);
            // SAFETY: 64 bytes are read from an array of 64.
            unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
        };
        let (first, second) = (index(0), index(1));
        for (b, block) in dst.chunks_exact_mut(quads * QUAD).enumerate() {
            let c0 = b * NR;
            let lanes = NR.min(n - c0);
            let mask: __mmask32 = if lanes == NR { !0 } else { (1 << lanes) - 1 };
            // Macros, not closures, so that the intrinsics are compiled with this function's
            // instructions.
            macro_rules! row {
                ($r:expr) => {
                    match $r {
                        // SAFETY: the caller promised `n` bytes from each row, and the mask
                        // reads only those from column `c0`.
                        Some(&r) => unsafe {
                            _mm256_maskz_loadu_epi8(mask, src.as_ptr().add(r + c0).cast())
                        },
                        None => _mm256_setzero_si256(),
                    }
                };
            }
            for (quad, four) in rows.chunks(4).enumerate() {
                macro_rules! pair {
                    ($i:expr) => {
                        _mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(row!(four.get($i))),
                            row!(four.get($i + 1)),
                        )
                    };
                }
                let (low, high) = (pair!(0), pair!(2));
                let at = block[quad * QUAD..][..QUAD].as_mut_ptr();
                // SAFETY: the quad's 128 bytes are left from `at`.
                unsafe {
                    _mm512_storeu_si512(at.cast(), _mm512_permutex2var_epi8(low, first, high));
                    _mm512_storeu_si512(
                        at.add(64).cast(),
                        _mm512_permutex2var_epi8(low, second, high),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both AVX-512 packings lay the columns out alike (the one by permutes is what
    /// [`pack_columns`] takes where VBMI is, so the GEMM's test of every instruction set runs
    /// the other only here).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn packing_by_permutes_is_packing_by_shifts() {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx512bw") && has!("avx512vl") && has!("avx512vbmi")) {
            eprintln!("skipped: this CPU has no AVX-512 VBMI");
            return;
        }
        for (k, n) in [(16, 32), (27, 45), (5, 7), (300, 70), (70, 33), (3, 96)] {
            let u = super::super::tests::bytes(3, k * n + 5);
            // Rows that start anywhere, as a convolution's windows do.
            let rows: Vec<usize> = (0..k).map(|p| (p * n + p % 3).min(k * n + 5 - n)).collect();
            let quads = k.div_ceil(4);
            let len = n.div_ceil(NR) * quads * QUAD;
            let (mut by_shifts, mut by_permutes) = (vec![7u8; len], vec![9u8; len]);
            // SAFETY: the CPU has the instructions (checked above), every row holds `n` bytes
            // and the buffers every block.
            unsafe {
                avx512::pack(&u, &rows, n, &mut by_shifts);
                avx512::pack_by_permutes(&u, &rows, n, &mut by_permutes);
            }
            // Columns past `n` are never stored, so only those up to it must agree.
            for (b, (x, y)) in by_shifts
                .chunks_exact(quads * QUAD)
                .zip(by_permutes.chunks_exact(quads * QUAD))
                .enumerate()
            {
                let width = NR.min(n - b * NR);
                for (qx, qy) in x.chunks_exact(QUAD).zip(y.chunks_exact(QUAD)) {
                    assert_eq!(qx[..4 * width], qy[..4 * width], "{k}x{n}, block {b}");
                }
            }
        }
    }
}
