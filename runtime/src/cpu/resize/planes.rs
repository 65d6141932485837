//! Linear and cubic resizes of the last two axes in one pass over the output rows
//! ([`planes`]), the columns' taps picked by permutes on AVX-512.

use super::{build, Isa, Taps};

/// The column taps of [`planes`] by tap (`index[t * wo + x]`, tap `t` of output column `x`),
/// as i32 for the gathers.
pub(super) struct Columns {
    n: usize,
    wo: usize,
    index: Vec<i32>,
    weight: Vec<f32>,
}

impl Columns {
    /// The caller checked that input positions fit an i32.
    pub fn new(taps: &Taps, wo: usize) -> Columns {
        let n = taps.n;
        let (mut index, mut weight) = (vec![0; n * wo], vec![0.0; n * wo]);
        for (x, (idx, w)) in taps
            .index
            .chunks_exact(n)
            .zip(taps.weight.chunks_exact(n))
            .enumerate()
        {
            for t in 0..n {
                index[t * wo + x] = idx[t] as i32;
                weight[t * wo + x] = w[t];
            }
        }
        Columns {
            n,
            wo,
            index,
            weight,
        }
    }
}

/// Resizes the last two axes of `v`, seen as `[outer, hi, wi]`, to `[outer, ho, wo]` in one
/// pass over the output rows: each output row sums its input rows' taps, each input row
/// resampled along the row first (and kept for the next output rows that read it). The two
/// passes of [`separable`] wrote and read back an `[outer, hi, wo]` intermediate between them,
/// and their last-axis pass summed each output's taps one float at a time: U^2-Net's 38
/// bilinear upsamplings took 10.4 ms of its 120 that way. The sums are the passes' own, in
/// their order (along the row, then across rows, each from 0 in tap order), so the results are
/// theirs, and the CUDA kernel's, bit for bit.
pub(super) fn planes(
    v: &[f32],
    (rows, cols): (&Taps, &Columns),
    [hi, wi, ho, wo]: [usize; 4],
    isa: Isa,
) -> Vec<f32> {
    build(v.len() / (hi * wi) * ho * wo, |range, sink| {
        // An input row with zeros past it, for the permutes' second load (see `Row::avx512`).
        let mut line = vec![0.0f32; wi + 32];
        // Input rows resampled along the row: (plane row, first column, values), a few of the
        // latest, since consecutive output rows read the same input rows.
        let mut resampled: Vec<(usize, usize, Vec<f32>)> = Vec::new();
        let mut out = Vec::new();
        let mut e = range.start;
        while e < range.end {
            let (r, x0) = (e / wo, e % wo);
            let (plane, j) = (r / ho, r % ho);
            let len = (wo - x0).min(range.end - e);
            out.clear();
            out.resize(len, 0.0);
            let taps = &rows.index[j * rows.n..][..rows.n];
            for (&p, &w) in taps.iter().zip(&rows.weight[j * rows.n..][..rows.n]) {
                let key = plane * hi + p;
                let at = match resampled
                    .iter()
                    .position(|(k, x, h)| (*k, *x, h.len()) == (key, x0, len))
                {
                    Some(at) => at,
                    None => {
                        line[..wi].copy_from_slice(&v[key * wi..][..wi]);
                        // The oldest entry makes room once a row's taps are all cached.
                        let mut h = if resampled.len() > 2 * rows.n {
                            resampled.remove(0).2
                        } else {
                            Vec::new()
                        };
                        h.resize(len, 0.0);
                        Row { cols, x0 }.run(isa, &mut line, &mut h);
                        resampled.push((key, x0, h));
                        resampled.len() - 1
                    }
                };
                accumulate(isa, &mut out, w, &resampled[at].2);
            }
            sink.extend(out.iter().copied());
            e += len;
        }
    })
}

/// `out += w * h`, 16 lanes wide where the CPU has AVX-512 (the build's baseline is 4 wide:
/// U^2-Net's upsamplings at two threads took 7.0 ms so, 6.2 this way).
fn accumulate(isa: Isa, out: &mut [f32], w: f32, h: &[f32]) {
    #[inline(always)]
    fn each(out: &mut [f32], w: f32, h: &[f32]) {
        for (o, &h) in out.iter_mut().zip(h) {
            *o += w * h;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(out: &mut [f32], w: f32, h: &[f32]) {
        each(out, w, h)
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: the `Isa` says AVX-512F is here.
        return unsafe { avx512(out, w, h) };
    }
    let _ = isa;
    each(out, w, h)
}

/// The columns `x0..` of one output row of [`planes`], from one input row.
struct Row<'a> {
    cols: &'a Columns,
    x0: usize,
}

impl Row<'_> {
    /// Resamples the input row in `line` (its width and 32 floats more) into `out`.
    fn run(&self, isa: Isa, line: &mut [f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if isa.avx512() {
            // SAFETY: the `Isa` says AVX-512F is here, and `line` has the 32 floats.
            return unsafe { self.avx512(line, out) };
        }
        let _ = isa;
        self.any(line, out);
    }

    fn any(&self, line: &[f32], out: &mut [f32]) {
        let Columns { n, wo, .. } = *self.cols;
        for (k, o) in out.iter_mut().enumerate() {
            let x = self.x0 + k;
            *o = (0..n).fold(0.0, |acc, t| {
                let i = t * wo + x;
                acc + self.cols.weight[i] * line[self.cols.index[i] as usize]
            });
        }
    }

    /// [`Row::any`] 16 columns at a time. When their taps span at most 32 input columns (any
    /// upsampling, and downsampling to more than half), the taps are picked from two loads of
    /// `line` by one permute each; otherwise they are gathered, which is several times slower
    /// here (20 cycles a gather on Zen 5: a 64-channel 2x upsampling to 320x320 took 4.5 ms
    /// through gathers, 2.5 through the permutes).
    ///
    /// # Safety
    /// AVX-512F must be available, and `line` must hold 32 floats past the input's row.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(&self, line: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::{
            _mm512_add_ps, _mm512_loadu_ps, _mm512_mask_i32gather_ps, _mm512_mask_storeu_ps,
            _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_permutex2var_ps,
            _mm512_set1_epi32, _mm512_setzero_ps, _mm512_sub_epi32,
        };
        const SPAN: usize = 32;
        let Columns { n, wo, .. } = *self.cols;
        let (index, weight) = (&self.cols.index, &self.cols.weight);
        assert!(self.x0 + out.len() <= wo && line.len() >= SPAN);
        for k in (0..out.len()).step_by(16) {
            let count = (out.len() - k).min(16);
            let mask = if count == 16 {
                u16::MAX
            } else {
                (1u16 << count) - 1
            };
            let x = self.x0 + k;
            // The taps' indices grow with the column and the tap.
            let base = index[x] as usize;
            let top = index[(n - 1) * wo + x + count - 1] as usize;
            let near = top.checked_sub(base).is_some_and(|d| d < SPAN);
            let mut acc = _mm512_setzero_ps();
            for t in 0..n {
                let at = t * wo + x;
                // SAFETY: the masked lanes lie in tap `t`'s columns (`x0 + out.len() <= wo`);
                // each index is an input column, below the row's width, so the two loads from
                // `base` stay in `line`, and masked-off lanes gather nothing.
                unsafe {
                    let idx = _mm512_maskz_loadu_epi32(mask, index[at..].as_ptr());
                    let w = _mm512_maskz_loadu_ps(mask, weight[at..].as_ptr());
                    let v = if near {
                        let (lo, hi) = (
                            _mm512_loadu_ps(line[base..].as_ptr()),
                            _mm512_loadu_ps(line[base + 16..].as_ptr()),
                        );
                        let from = _mm512_sub_epi32(idx, _mm512_set1_epi32(base as i32));
                        _mm512_permutex2var_ps(lo, from, hi)
                    } else {
                        _mm512_mask_i32gather_ps::<4>(
                            _mm512_setzero_ps(),
                            mask,
                            idx,
                            line.as_ptr().cast(),
                        )
                    };
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(w, v));
                }
            }
            // SAFETY: the mask covers `out[k..k + count]`.
            unsafe { _mm512_mask_storeu_ps(out[k..].as_mut_ptr(), mask, acc) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{pass, resize, Taps};
    use super::Isa;
    use crate::Tensor;
    use temblor_ir::{ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest};

    /// Resizing the last two axes in one pass gives the bits of a pass per axis (the CUDA
    /// kernel's too) on every instruction set, for bilinear and bicubic up- and downsamplings,
    /// whose taps span few columns (the permutes) or many (downsampling by 3: the gathers).
    #[test]
    fn one_pass_over_planes_gives_the_bits_of_a_pass_per_axis_on_every_instruction_set() {
        let (c, h, w) = (3, 23, 37);
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let x = Tensor::f32(vec![1, c, h, w], x);
        for mode in [ResizeMode::Linear, ResizeMode::Cubic] {
            let a = ResizeAttrs::new(mode, ResizeCoordinate::HalfPixel, ResizeNearest::Floor);
            for (oh, ow) in [(46, 74), (61, 100), (8, 12)] {
                let sizes = Tensor::i64(vec![4], vec![1, c as i64, oh, ow]);
                let mut results = Vec::new();
                for isa in Isa::available() {
                    let y = resize(&a, &x, [None, None, Some(&sizes)], isa).expect("resize");
                    results.push(y.as_f32().expect("f32").to_vec());
                }
                assert!(
                    results.windows(2).all(|r| r[0] == r[1]),
                    "{mode:?} to {oh}x{ow}"
                );
                let axes = a
                    .plan(&x.shape, None, None, Some(&[1, c as i64, oh, ow]))
                    .expect("plan");
                let wide = pass(
                    x.as_f32().expect("f32"),
                    &Taps::new(&a, &axes[3]),
                    &axes[3],
                    1,
                    0.0,
                );
                let both = pass(&wide, &Taps::new(&a, &axes[2]), &axes[2], ow as usize, 0.0);
                let differ = results[0]
                    .iter()
                    .zip(&both)
                    .filter(|(g, r)| g.to_bits() != r.to_bits());
                assert_eq!(differ.count(), 0, "{mode:?} to {oh}x{ow}");
            }
        }
    }
}
