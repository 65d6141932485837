//! Every element type as a number: the conversions that fill values (ConstantOfShape, Pad's
//! constant, Range) need and the combinations ScatterND reduces with, so those kernels are
//! written once for all dtypes. Integers wrap rather than overflow, as ONNX runtimes do; bool
//! combines as numpy does (add and max are `or`, mul and min are `and`).

use super::Element;
use crate::{bf16, f16};

pub(crate) trait Number: Element + PartialEq {
    const FLOAT: bool;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_i64(v: i64) -> Self;
    fn to_i64(self) -> i64;
    fn plus(self, other: Self) -> Self;
    fn times(self, other: Self) -> Self;
    fn larger(self, other: Self) -> Self;
    fn smaller(self, other: Self) -> Self;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Number for $t {
            const FLOAT: bool = false;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn plus(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn times(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
            fn larger(self, other: Self) -> Self {
                Ord::max(self, other)
            }
            fn smaller(self, other: Self) -> Self {
                Ord::min(self, other)
            }
        }
    )*};
}

integer!(i8, u8, i16, u16, i32, u32, i64, u64);

macro_rules! float {
    ($($t:ty),*) => {$(
        impl Number for $t {
            const FLOAT: bool = true;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn plus(self, other: Self) -> Self {
                self + other
            }
            fn times(self, other: Self) -> Self {
                self * other
            }
            fn larger(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn smaller(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
        }
    )*};
}

float!(f32, f64);

/// The two half formats: each step is computed in f32 and rounded back (`half`'s operators).
macro_rules! half {
    ($($t:ty),*) => {$(
        impl Number for $t {
    const FLOAT: bool = true;
    fn from_f64(v: f64) -> Self {
        <$t>::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        <$t>::to_f64(self)
    }
    fn from_i64(v: i64) -> Self {
        <$t>::from_f64(v as f64)
    }
    fn to_i64(self) -> i64 {
        <$t>::to_f64(self) as i64
    }
    fn plus(self, other: Self) -> Self {
        self + other
    }
    fn times(self, other: Self) -> Self {
        self * other
    }
    fn larger(self, other: Self) -> Self {
        <$t>::max(self, other)
    }
    fn smaller(self, other: Self) -> Self {
        <$t>::min(self, other)
    }
}

    )*};
}

half!(f16, bf16);

impl Number for bool {
    const FLOAT: bool = false;
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn plus(self, other: Self) -> Self {
        self | other
    }
    fn times(self, other: Self) -> Self {
        self & other
    }
    fn larger(self, other: Self) -> Self {
        self | other
    }
    fn smaller(self, other: Self) -> Self {
        self & other
    }
}
