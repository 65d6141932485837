//! Intel AMX for the bf16 GEMM: eight tile registers of up to 16 rows of 64 bytes, and
//! `tdpbf16ps`, which multiplies two tiles of bf16 pairs into a third of f32 sums (16 x 16 x 32
//! multiply-adds). On the Xeon (Emerald Rapids) this was measured on, its int8 sibling
//! `tdpbsud` takes 4.8 ns: 6.8 int8 TOPS on one core, about nine times AVX-512 VNNI's (why the
//! int8 layers keep VNNI all the same: `int8_gemm.rs`).
//!
//! The second operand is the layout the bf16 GEMM already packs its columns in
//! (`bf16_gemm.rs`): per pair of depth (4 bytes, a unit here), one word a column, blocks of 32
//! columns. A tile of it is 16 units of 16 columns, a row every 128 bytes. The weight, the
//! first operand, is laid out row by row ([`TileWeights`]). Depth goes in chunks of [`CHUNK`]
//! units: the weight is zero past its depth up to a whole chunk, and the packers write zeros
//! there too (`block_units`), so a tile never reads a number that is not part of the product
//! (a stale infinity times a zero weight would be NaN).
//!
//! Rust has no stable AMX intrinsics; the instructions are written in `asm!`. Linux lends a
//! process the tile registers only once it asks (`arch_prctl(ARCH_REQ_XCOMP_PERM)`): [`usable`]
//! asks, once, and an [`super::isa::Isa`] says AMX only where that succeeded.
//!
//! YOLOv8n's bf16 plan at one thread: 24.8 ms with `vdpbf16ps`, 7.9 ms on the tiles (fp32:
//! 14.6 ms), the GEMMs now a fifth of its time and the epilogue, the packing and the copies
//! the rest.

#[cfg(target_arch = "x86_64")]
use std::arch::asm;
use std::marker::PhantomData;
use std::sync::OnceLock;

/// Rows of a tile: output channels of a tile of sums, and of a weight tile.
pub(crate) const ROWS: usize = 16;
/// Depth units (4 bytes) of a tile.
pub(crate) const CHUNK: usize = 16;
/// Columns of a block of packed columns: two tiles of 16.
pub(crate) const COLS: usize = 32;
/// Bytes of a row of a block of packed columns, and of a row of [`Sums`].
const ROW_BYTES: usize = COLS * 4;

/// Whether this machine has AMX's tiles and bf16 products, and the kernel lent this process
/// the tile registers.
pub(crate) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            use std::arch::x86_64::__cpuid_count;
            // Leaf 7 is read only where leaf 0 says it exists.
            if __cpuid_count(0, 0).eax < 7 {
                return false;
            }
            let edx = __cpuid_count(7, 0).edx;
            let (bf16, tile) = (edx >> 22 & 1, edx >> 24 & 1);
            if bf16 & tile == 0 {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: asks the kernel for a permission of this process; no memory is passed.
            unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                ) == 0
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// Whether a GEMM of `units` depth units runs on the tiles on `isa`: at least one whole
/// [`CHUNK`]. Below it the padded depth is mostly zeros (with int8 tiles, YOLOv8n's stem, a
/// depth of 7 units, took 22 µs against VNNI's 17; at a depth of 16 they were even).
pub(crate) fn takes(isa: super::isa::Isa, units: usize) -> bool {
    isa.amx() && units >= CHUNK
}

/// Units a block of packed columns holds for a depth of `units` on `isa`: whole [`CHUNK`]s
/// where the tiles take it ([`takes`]).
pub(crate) fn block_units(isa: super::isa::Isa, units: usize) -> usize {
    if takes(isa, units) {
        units.div_ceil(CHUNK) * CHUNK
    } else {
        units
    }
}

/// One cache line of a weight.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u32; CHUNK]);

/// A GEMM weight laid out for the tiles: per group, its rows one after another, each of
/// [`block_units`] words (zero past the depth) from a cache line's start, and zero rows after
/// the last up to where a tile starting at any row that is a multiple of 8 ends.
#[derive(Debug)]
pub(crate) struct TileWeights {
    data: Vec<Line>,
    /// Rows a group holds, padding included.
    rows: usize,
    /// Words a row holds.
    units: usize,
}

impl TileWeights {
    /// `groups` groups of `rows` rows of `units` words, word `(group, row, unit)` being
    /// `word(group, row, unit)`.
    pub fn new(
        (groups, rows, units): (usize, usize, usize),
        word: impl Fn(usize, usize, usize) -> u32,
    ) -> TileWeights {
        let padded_rows = rows.next_multiple_of(8) + 8;
        let padded = units.div_ceil(CHUNK) * CHUNK;
        let lines = padded / CHUNK;
        let mut data = vec![Line([0; CHUNK]); groups * padded_rows * lines];
        for g in 0..groups {
            for r in 0..rows {
                let row = &mut data[(g * padded_rows + r) * lines..][..lines];
                for u in 0..units {
                    row[u / CHUNK].0[u % CHUNK] = word(g, r, u);
                }
            }
        }
        TileWeights {
            data,
            rows: padded_rows,
            units: padded,
        }
    }
}

/// The sums of up to 32 rows by one block of [`COLS`] columns.
#[repr(C, align(64))]
pub(crate) struct Sums(pub [[f32; COLS]; 2 * ROWS]);

impl Sums {
    pub fn new() -> Sums {
        Sums([[0.0; COLS]; 2 * ROWS])
    }
}

/// This thread's tile registers, configured (every tile 16 rows of 64 bytes) while this lives
/// and released when it is dropped: holding one is proof that the tile instructions run. Not
/// `Send`: the configuration is the thread's.
pub(crate) struct Tiles(PhantomData<*const ()>);

/// The tile configuration `ldtilecfg` reads: palette 1, then the bytes per row of each tile,
/// then its rows.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl Tiles {
    /// The tiles, when they take a GEMM of depth `units` on `isa` ([`takes`]).
    pub fn load(isa: super::isa::Isa, units: usize) -> Option<Tiles> {
        if !takes(isa, units) {
            return None;
        }
        let mut config = Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        config.colsb[..8].fill(64);
        config.rows[..8].fill(ROWS as u8);
        // SAFETY: an `Isa` with AMX is only made where `usable` found it and this process may
        // use it; the configuration is 64 readable bytes.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) &config as *const Config, options(nostack, readonly))
        };
        Some(Tiles(PhantomData))
    }

    /// Rows `row..row + rows` (`rows` at most 32) of group `group` of `weights` times `block`,
    /// one block of packed columns ([`block_units`] pairs of [`COLS`] words), into the first
    /// `rows` rows of `sums` (with at most 16, the others are left as they were). `row` is a
    /// multiple of 8 below the group's rows.
    pub fn multiply(
        &self,
        weights: &TileWeights,
        (group, row, rows): (usize, usize, usize),
        block: &[u32],
        sums: &mut Sums,
    ) {
        let chunks = weights.units / CHUNK;
        let first = (group * weights.rows + row) * chunks;
        let tiles = if rows > ROWS { 2 } else { 1 };
        assert!(
            chunks > 0
                && rows <= 2 * ROWS
                && first + tiles * ROWS * chunks <= weights.data.len()
                && block.len() >= weights.units * COLS
        );
        let a = weights.data[first..].as_ptr().cast::<u32>();
        let stride_a = weights.units * 4;
        let (b, c) = (block.as_ptr(), sums.0.as_mut_ptr());
        // SAFETY: holding `self` means the tiles are configured as the loads and products
        // expect; every tile read lies in the weight (rows `row..row + 16 · tiles` of the
        // group, `chunks` chunks each) or the block (`chunks` chunks of 16 rows of 128 bytes),
        // as asserted, and the stores in `sums`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            if tiles == 2 {
                two_tiles(a, stride_a, b, chunks, c.cast())
            } else {
                one_tile(a, stride_a, b, chunks, c.cast())
            }
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `load`; releasing them touches no memory.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("tilerelease", options(nostack, nomem))
        };
    }
}

/// 32 rows of the weight from `a` (a row every `stride_a` bytes) times 32 columns from `b`,
/// over `chunks` chunks of depth, stored to the 32 rows of 128 bytes from `c`: sums in tiles
/// 0-3, weight rows in 4 and 5, columns in 6 and 7.
///
/// # Safety
/// The tiles are configured (a [`Tiles`] is held), `chunks > 0`, and the rows read and written
/// are in bounds.
#[cfg(target_arch = "x86_64")]
unsafe fn two_tiles(a: *const u32, stride_a: usize, b: *const u32, chunks: usize, c: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a2} + {sa}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a}, 64",
            "add {a2}, 64",
            "add {b}, 2048",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {sb}*1], tmm0",
            "tilestored [{c} + {sb}*1 + 64], tmm1",
            "tilestored [{c} + {sb}*1 + 2048], tmm2",
            "tilestored [{c} + {sb}*1 + 2112], tmm3",
            a = inout(reg) a => _,
            a2 = inout(reg) a.byte_add(ROWS * stride_a) => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            sa = in(reg) stride_a,
            sb = in(reg) ROW_BYTES,
            c = in(reg) c,
            options(nostack),
        )
    }
}

/// [`two_tiles`] for 16 rows of the weight: sums in tiles 0 and 1.
///
/// # Safety
/// As for [`two_tiles`].
#[cfg(target_arch = "x86_64")]
unsafe fn one_tile(a: *const u32, stride_a: usize, b: *const u32, chunks: usize, c: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "2:",
            "tileloadd tmm4, [{a} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "add {a}, 64",
            "add {b}, 2048",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {sb}*1], tmm0",
            "tilestored [{c} + {sb}*1 + 64], tmm1",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            sa = in(reg) stride_a,
            sb = in(reg) ROW_BYTES,
            c = in(reg) c,
            options(nostack),
        )
    }
}
