//! The vector instructions the CPU kernels may use, detected once when a plan is prepared and
//! handed to every kernel that branches on them: a kernel asking the CPU itself did it per call
//! (the epilogue per output row), and four places asking could disagree on what the plan runs.

use std::fmt;

/// An instruction set the running machine has. Only [`Isa::detect`] (and in tests
/// `Isa::available`) makes one, so holding an `Isa` is proof that its instructions run here:
/// the unsafe `#[target_feature]` kernels rest on that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Isa {
    level: Level,
    /// AVX-512 VNNI's byte dot products (`vpdpbusd`), for the int8 kernels; only with AVX-512.
    vnni: bool,
    /// AVX-512 BF16's dot products of bf16 pairs (`vdpbf16ps`), for the bf16 convolutions; only
    /// with AVX-512.
    bf16: bool,
    /// AMX's tiles and bf16 products (`amx.rs`), for the bf16 GEMM; only with AVX-512 BF16,
    /// whose kernels do the rest of the bf16 layers.
    amx: bool,
}

/// The kernel families, each a superset of the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Whatever the build targets (baseline x86-64: SSE2), through portable Rust.
    Scalar,
    /// AVX2 with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512F, on top of AVX2 and FMA (no CPU has the one without the others, but the
    /// kernels written for those may then be used on it safely).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// `f`, with its always-inlined callees compiled for this instruction set's vector width:
    /// the build targets baseline x86-64 (SSE2), whose 4-lane vectors (2 for f64) leave generic
    /// loops at a fraction of what the machine does. Each lane's arithmetic is the same at any
    /// width (Rust never contracts a multiply and an add), so are the bits.
    #[inline(always)]
    pub fn widest<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        match self.level {
            // SAFETY: an `Isa` of a level is only made on a machine that has its instructions.
            Level::Avx512 => return unsafe { wide::avx512(f) },
            // SAFETY: as above.
            Level::Avx2Fma => return unsafe { wide::avx2(f) },
            Level::Scalar => {}
        }
        f()
    }

    /// The widest instruction set this machine runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                let avx512 = has!("avx512f");
                // Every CPU with VNNI has BW and VL too; the int8 kernels use all three.
                let vnni = avx512 && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni");
                let bf16 = avx512 && has!("avx512bf16");
                return Isa {
                    level: if avx512 {
                        Level::Avx512
                    } else {
                        Level::Avx2Fma
                    },
                    vnni,
                    bf16,
                    amx: bf16 && super::amx::usable(),
                };
            }
        }
        Isa {
            level: Level::Scalar,
            vnni: false,
            bf16: false,
            amx: false,
        }
    }

    /// Every instruction set this machine runs, narrowest first: tests compare the kernels of
    /// each against the scalar ones.
    #[cfg(test)]
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut all = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        all.extend([Level::Avx2Fma, Level::Avx512]);
        let widest = Isa::detect();
        let mut isas: Vec<Isa> = all
            .into_iter()
            .filter(|&level| level <= widest.level)
            .map(|level| Isa {
                level,
                vnni: false,
                bf16: false,
                amx: false,
            })
            .collect();
        if widest.amx {
            isas.push(Isa {
                amx: false,
                ..widest
            });
        }
        if widest.vnni || widest.bf16 {
            isas.push(widest);
        }
        isas
    }

    pub fn level(self) -> Level {
        self.level
    }

    /// Whether AVX-512 VNNI may be used, with AVX-512BW and VL.
    pub fn vnni(self) -> bool {
        self.vnni
    }

    /// Whether AVX-512 BF16 may be used.
    pub fn bf16(self) -> bool {
        self.bf16
    }

    /// The extensions beyond [`Isa::name`] that kernels use here, for reports: `avx512vnni`
    /// (int8), `avx512bf16` and `amx-bf16` (bf16).
    pub fn extensions(self) -> Vec<&'static str> {
        [
            (self.vnni, "avx512vnni"),
            (self.bf16, "avx512bf16"),
            (self.amx, "amx-bf16"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect()
    }

    /// Whether AMX's tiles may be used (see `amx.rs`).
    pub fn amx(self) -> bool {
        self.amx
    }

    /// Whether AVX2 and FMA may be used.
    pub fn avx2(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.level >= Level::Avx2Fma;
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Whether AVX-512F may be used.
    pub fn avx512(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.level == Level::Avx512;
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// A short name for reports: `scalar`, `avx2+fma` or `avx512f`, the values report.json's
    /// `context.hardware.isa` has always had.
    pub fn name(self) -> &'static str {
        match self.level {
            Level::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512f",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bodies [`Isa::widest`] runs, compiled for each vector width.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}
