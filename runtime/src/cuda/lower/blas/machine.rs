//! A sequential interpreter of [`Work`] over f32 buffers, for the lowerings' tests: GEMMs by
//! their documented semantics, kernels by a test's own model of them. Outputs and scratch
//! start as NaN, so an element no work writes shows.

use super::super::{At, Buf, Cx, Gemm, Launch, Work};
use std::collections::HashMap;

pub struct Machine {
    pub bufs: HashMap<Buf, Vec<f32>>,
}

impl Machine {
    /// Inputs from their values; outputs and scratch as `cx` sizes them.
    pub fn new(inputs: &[&[f32]], cx: &Cx) -> Machine {
        let mut bufs = HashMap::new();
        for (p, v) in inputs.iter().enumerate() {
            bufs.insert(Buf::Input(p), v.to_vec());
        }
        for p in 0..cx.output_count() {
            bufs.insert(Buf::Output(p), vec![f32::NAN; cx.output(p).elements()]);
        }
        for (i, &bytes) in cx.scratch.iter().enumerate() {
            bufs.insert(Buf::Scratch(i), vec![f32::NAN; bytes / 4]);
        }
        Machine { bufs }
    }

    pub fn run(&mut self, work: &[Work], kernel: impl Fn(&Launch, &mut Machine)) {
        for w in work {
            match w {
                Work::Gemm(g) => self.gemm(g),
                Work::Launch(l) => kernel(l, self),
                Work::Copy { from, to, bytes } => {
                    let src = self.read(*from, bytes / 4).to_vec();
                    self.write(*to, &src);
                }
                Work::Zero { to, bytes } => self.write(*to, &vec![0.0; bytes / 4]),
            }
        }
    }

    /// `len` elements from `at`.
    pub fn read(&self, at: At, len: usize) -> &[f32] {
        assert_eq!(at.bytes % 4, 0);
        &self.bufs[&at.buf][at.bytes / 4..][..len]
    }

    pub fn write(&mut self, at: At, values: &[f32]) {
        let buf = self.bufs.get_mut(&at.buf).unwrap();
        buf[at.bytes / 4..][..values.len()].copy_from_slice(values);
    }

    /// Everything from `at` to the end of its buffer.
    pub fn rest(&self, at: At) -> &[f32] {
        &self.bufs[&at.buf][at.bytes / 4..]
    }

    fn gemm(&mut self, g: &Gemm) {
        assert!(
            g.lda >= if g.a_transposed { g.m } else { g.k },
            "lda of {g:?}"
        );
        assert!(
            g.ldb >= if g.b_transposed { g.k } else { g.n },
            "ldb of {g:?}"
        );
        assert!(g.ldc >= g.n, "ldc of {g:?}");
        let (a, b) = (self.rest(g.a).to_vec(), self.rest(g.b).to_vec());
        let mut c = self.rest(g.c).to_vec();
        for i in 0..g.batch {
            for r in 0..g.m {
                for col in 0..g.n {
                    let mut sum = 0.0f32;
                    for p in 0..g.k {
                        let x = match g.a_transposed {
                            true => a[i * g.stride_a + p * g.lda + r],
                            false => a[i * g.stride_a + r * g.lda + p],
                        };
                        let y = match g.b_transposed {
                            true => b[i * g.stride_b + col * g.ldb + p],
                            false => b[i * g.stride_b + p * g.ldb + col],
                        };
                        sum += x * y;
                    }
                    let at = i * g.stride_c + r * g.ldc + col;
                    // cuBLAS reads no C at beta 0.
                    let old = if g.beta == 0.0 { 0.0 } else { g.beta * c[at] };
                    c[at] = g.alpha * sum + old;
                }
            }
        }
        self.write(g.c, &c);
    }
}
