//! Kernel parameter structs passed by value: each kernel family's `#[repr(C)]` mirror of its C
//! struct lives in the family's file, and every mirror is listed here with its size and field
//! offsets, which a test compares with the C compiler's own (`tests/cuda_kernels/layouts.rs`):
//! a field out of place would reach the GPU as garbage with no error anywhere.

/// A mirror's layout as Rust lays it out.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The C struct's name in the `.cuh` headers.
    pub c_name: &'static str,
    pub size: usize,
    /// Each field's name (the C name) and byte offset.
    pub fields: &'static [(&'static str, usize)],
}

/// The layout of a mirror: `layout!(Type, "CName", [field, ...])`, every field listed.
macro_rules! layout {
    ($t:ty, $c:literal, [$($f:ident),* $(,)?]) => {
        $crate::cuda::lower::params::Layout {
            c_name: $c,
            size: ::std::mem::size_of::<$t>(),
            fields: &[$((stringify!($f), ::std::mem::offset_of!($t, $f))),*],
        }
    };
}
pub(crate) use layout;

/// Marks a `#[repr(C)]` mirror whose every byte is a field (no padding), so its bytes may be
/// read: the layout test checks that the fields cover the size.
///
/// # Safety
/// The type is `#[repr(C)]`, holds only integers, floats and arrays of them, and has no padding.
pub(crate) unsafe trait Pod: Copy {}

/// The bytes of a parameter struct, for [`super::Arg::Pod`].
pub(crate) fn bytes<T: Pod>(value: &T) -> Vec<u8> {
    // SAFETY: `Pod` types have no padding, so every byte of `value` is initialized.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .to_vec()
}

/// Every mirror of every family.
pub fn layouts() -> Vec<Layout> {
    [
        super::elementwise::LAYOUTS,
        super::movement::LAYOUTS,
        super::resize::LAYOUTS,
        super::pool::LAYOUTS,
        super::normalize::LAYOUTS,
        super::conv::LAYOUTS,
        super::library::LAYOUTS,
        super::quant::LAYOUTS,
        crate::cuda::preprocess::LAYOUTS,
    ]
    .concat()
}
