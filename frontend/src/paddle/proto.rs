//! Messages of `proto/paddle_framework.proto`, generated at build time by prost.

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/paddle.framework.proto.rs"));
