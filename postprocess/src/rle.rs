//! COCO's run-length encoding of a binary mask (`pycocotools.mask.encode`): runs over the
//! column-major (Fortran order) pixels, starting with a run of zeros, written in COCO's compact
//! string form.

use crate::Mask;
use serde::Serialize;

/// A mask as COCO's `segmentation` holds it: `{"size": [h, w], "counts": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rle {
    pub size: [usize; 2],
    pub counts: String,
}

impl Rle {
    /// The encoding of `mask` over the whole photo.
    pub fn of_mask(mask: &Mask) -> Rle {
        let (h, w) = mask.image;
        let mut runs = Vec::new();
        let (mut current, mut run) = (false, 0u64);
        for x in 0..w {
            for y in 0..h {
                let inside = mask.contains(x, y);
                if inside != current {
                    runs.push(run);
                    current = inside;
                    run = 0;
                }
                run += 1;
            }
        }
        runs.push(run);
        Rle {
            size: [h, w],
            counts: compact(&runs),
        }
    }
}

/// pycocotools' `rleToString`: each run after the second as the difference from the run two
/// before, in 5-bit groups with a continuation bit, offset by 48 into printable ASCII.
fn compact(runs: &[u64]) -> String {
    let mut out = String::new();
    for (i, &run) in runs.iter().enumerate() {
        let mut x = run as i64;
        if i > 2 {
            x -= runs[i - 2] as i64;
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            out.push((c + 48) as char);
            if !more {
                break;
            }
        }
    }
    out
}
