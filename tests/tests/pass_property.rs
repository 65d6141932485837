//! The optimizer against random small graphs: a seeded generator builds chains and branches of
//! convolutions (kernel 1 or 3, stride 1 or 2, dense or depthwise, with or without bias),
//! BatchNorms, activations, per-channel Mul/Add constants, residual Adds, Pads before a Conv or
//! AveragePool, and ConvTranspose+BatchNorm, some with intermediate values as extra graph
//! outputs. Each graph goes through `optimize_passes()`; the optimized graph must validate and
//! compute what the original does on the CPU runtime. A failure names the graph's seed, which
//! `graph(seed)` rebuilds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use temblor_ir::{
    validate, BinaryOp, ConvAttrs, ConvTransposeAttrs, DType, Graph, GraphOutput, Layout, Op,
    PadMode, PoolAttrs, Shape, TensorType, UnaryOp, ValueRef, Weight,
};
use temblor_passes::{optimize_passes, Driver, PassRecord};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::Builder;
use temblor_tests::{rel_l2, Rng};

const GRAPHS: u64 = 240;

/// An NCHW activation: the value and its channels, height and width.
#[derive(Clone, Copy)]
struct Act {
    value: ValueRef,
    dims: [usize; 3],
}

struct Gen {
    b: Builder,
    layers: usize,
    outputs: Vec<ValueRef>,
}

impl Gen {
    fn below(&mut self, n: u64) -> usize {
        (self.b.rng.next_u64() % n) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.b.rng.next_u64() % 100 < percent
    }

    fn name(&mut self, kind: &str) -> String {
        self.layers += 1;
        format!("{kind}{}", self.layers)
    }

    fn layer(&mut self, kind: &str, op: Op, dims: [usize; 3], ins: &[ValueRef]) -> Act {
        let name = self.name(kind);
        let [c, h, w] = dims;
        let value = self.b.node(&name, op, ty(&[1, c, h, w]), ins);
        Act { value, dims }
    }

    /// A constant of values in `[-scale, scale)` (shifted by `offset`).
    fn constant(&mut self, name: &str, dims: &[usize], scale: f32, offset: f32) -> ValueRef {
        let values = self.b.rng.values(dims.iter().product());
        let values = values.iter().map(|v| v * scale + offset).collect();
        self.b.constant(name, dims, values, layout_of(dims))
    }

    fn ints(&mut self, name: &str, values: &[i64]) -> ValueRef {
        let weight = self
            .b
            .g
            .weights
            .add(Weight::from_i64(vec![values.len()], values));
        let ty = TensorType {
            dtype: DType::I64,
            shape: Shape::from_known(&[values.len()]),
            layout: Layout::Any,
        };
        self.b.node(name, Op::Constant { weight }, ty, &[])
    }

    /// A Conv of `x` with the given pads; picks the kernel, stride, grouping and bias.
    fn conv(&mut self, x: Act, pads: Option<[usize; 4]>) -> Act {
        let [c, h, w] = x.dims;
        let kernel = if self.chance(60) && h >= 2 && w >= 2 {
            3
        } else {
            1
        };
        let pads = pads.unwrap_or(if kernel == 3 { [1; 4] } else { [0; 4] });
        let stride = if self.chance(25) { 2 } else { 1 };
        let depthwise = c > 1 && self.chance(30);
        let (cout, group) = if depthwise {
            (c, c)
        } else {
            (1 + self.below(6), 1)
        };
        let Some(dims) = window_out([h, w], pads, kernel, stride).map(|[oh, ow]| [cout, oh, ow])
        else {
            return x;
        };
        let name = self.name("conv");
        let fan_in = (c / group * kernel * kernel) as f32;
        let weight = [cout, c / group, kernel, kernel];
        let mut ins = vec![
            x.value,
            self.constant(&format!("{name}.w"), &weight, fan_in.sqrt().recip(), 0.0),
        ];
        if self.chance(50) {
            ins.push(self.constant(&format!("{name}.b"), &[cout], 1.0, 0.0));
        }
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel: [kernel; 2],
            strides: [stride; 2],
            dilations: [1, 1],
            pads,
            group,
            activation: None,
            affine: None,
        };
        self.layer("conv", Op::Conv(attrs), dims, &ins)
    }

    fn batchnorm(&mut self, x: Act) -> Act {
        let name = self.name("bn");
        let c = x.dims[0];
        let mut ins = vec![x.value];
        for (p, scale, offset) in [
            ("gamma", 1.0, 0.0),
            ("beta", 1.0, 0.0),
            ("mean", 1.0, 0.0),
            ("var", 0.5, 1.0),
        ] {
            ins.push(self.constant(&format!("{name}.{p}"), &[c], scale, offset));
        }
        self.layer("bn", Op::BatchNorm { epsilon: 1e-5 }, x.dims, &ins)
    }

    fn activation(&mut self, x: Act) -> Act {
        let op = match self.below(7) {
            0 => Op::Unary(UnaryOp::Relu),
            1 => Op::Clip { min: 0.0, max: 6.0 },
            2 => Op::LeakyRelu { alpha: 0.1 },
            3 => Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            4 => Op::Unary(UnaryOp::HardSwish),
            5 => Op::Unary(UnaryOp::Sigmoid),
            _ => {
                let gate = self.layer("sigmoid", Op::Unary(UnaryOp::Sigmoid), x.dims, &[x.value]);
                let ins = self.either_order(x.value, gate.value);
                return self.layer("silu", Op::Binary(BinaryOp::Mul), x.dims, &ins);
            }
        };
        self.layer("act", op, x.dims, &[x.value])
    }

    fn either_order(&mut self, a: ValueRef, b: ValueRef) -> [ValueRef; 2] {
        if self.chance(50) {
            [a, b]
        } else {
            [b, a]
        }
    }

    /// `x * s` or `x + s` with one value per channel, or one for all.
    fn affine(&mut self, x: Act) -> Act {
        let c = x.dims[0];
        let dims: &[usize] = match self.below(4) {
            0 => &[1, c, 1, 1],
            1 => &[c, 1, 1],
            2 => &[1],
            _ => &[],
        };
        let mul = self.chance(50);
        let name = self.name(if mul { "scale" } else { "shift" });
        let k = self.constant(&name, dims, 1.0, if mul { 0.5 } else { 0.0 });
        let ins = self.either_order(x.value, k);
        let op = Op::Binary(if mul { BinaryOp::Mul } else { BinaryOp::Add });
        self.layer(&name, op, x.dims, &ins)
    }

    /// `x + f(x)` with `f` a stride-1 same-size conv (and maybe a BatchNorm).
    fn residual(&mut self, x: Act) -> Act {
        let [c, h, w] = x.dims;
        let kernel = if self.chance(50) { 3 } else { 1 };
        let name = self.name("res");
        let weight = [c, c, kernel, kernel];
        let scale = ((c * kernel * kernel) as f32).sqrt().recip();
        let ins = [
            x.value,
            self.constant(&format!("{name}.w"), &weight, scale, 0.0),
        ];
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel: [kernel; 2],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [kernel / 2; 4],
            group: 1,
            activation: None,
            affine: None,
        };
        let mut y = self.layer("res_conv", Op::Conv(attrs), [c, h, w], &ins);
        if self.chance(60) {
            y = self.batchnorm(y);
        }
        let ins = self.either_order(x.value, y.value);
        self.layer("res_add", Op::Binary(BinaryOp::Add), x.dims, &ins)
    }

    /// A constant zero Pad of the spatial axes, read by a Conv or a pool (which fuses only into
    /// an AveragePool that counts padded cells).
    fn pad(&mut self, x: Act) -> Act {
        let [c, h, w] = x.dims;
        let p: [usize; 4] = std::array::from_fn(|_| self.below(3));
        let [t, l, b, r] = p.map(|v| v as i64);
        let name = self.name("pad");
        let mut ins = vec![x.value];
        let spatial_only = self.chance(40);
        let amounts = if spatial_only {
            vec![t, l, b, r]
        } else {
            vec![0, 0, t, l, 0, 0, b, r]
        };
        ins.push(self.ints(&format!("{name}.pads"), &amounts));
        if spatial_only || self.chance(30) {
            ins.push(
                self.b
                    .constant(&format!("{name}.zero"), &[], vec![0.0], Layout::Any),
            );
        }
        if spatial_only {
            let axes: &[i64] = if self.chance(50) { &[2, 3] } else { &[-2, -1] };
            ins.push(self.ints(&format!("{name}.axes"), axes));
        }
        let op = Op::Pad {
            mode: PadMode::Constant,
        };
        let padded = self.layer("pad", op, [c, h + p[0] + p[2], w + p[1] + p[3]], &ins);
        if self.chance(70) {
            let pads = if self.chance(50) {
                [0; 4]
            } else {
                [1, 0, 0, 1]
            };
            return self.conv(padded, Some(pads));
        }
        let [_, ph, pw] = padded.dims;
        let pads = [self.below(2); 4];
        let Some([oh, ow]) = window_out([ph, pw], pads, 3, 1) else {
            return padded;
        };
        let attrs = PoolAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: pads.to_vec(),
            ceil_mode: false,
            count_include_pad: self.chance(70),
        };
        let op = if self.chance(70) {
            Op::AveragePool(attrs)
        } else {
            Op::MaxPool(attrs)
        };
        self.layer("pool", op, [c, oh, ow], &[padded.value])
    }

    /// A ConvTranspose (grouped or not, with or without bias) and a BatchNorm.
    fn conv_transpose_bn(&mut self, x: Act) -> Act {
        let [c, h, w] = x.dims;
        let group = if c % 2 == 0 && self.chance(40) { 2 } else { 1 };
        let per_group = 1 + self.below(3);
        let kernel = 2 + self.below(2);
        let stride = if h.max(w) <= 10 && self.chance(50) {
            2
        } else {
            1
        };
        let pad = if kernel == 3 { self.below(2) } else { 0 };
        let out = |n: usize| stride * (n - 1) + kernel - 2 * pad;
        let name = self.name("up");
        let scale = ((c / group * kernel * kernel) as f32).sqrt().recip();
        let weight = [c, per_group, kernel, kernel];
        let mut ins = vec![
            x.value,
            self.constant(&format!("{name}.w"), &weight, scale, 0.0),
        ];
        let cout = per_group * group;
        if self.chance(50) {
            ins.push(self.constant(&format!("{name}.b"), &[cout], 1.0, 0.0));
        }
        let attrs = ConvTransposeAttrs {
            kernel: [kernel; 2],
            strides: [stride; 2],
            dilations: [1, 1],
            pads: [pad; 4],
            output_padding: [0, 0],
            group,
            activation: None,
        };
        let up = self.layer("up", Op::ConvTranspose(attrs), [cout, out(h), out(w)], &ins);
        self.batchnorm(up)
    }
}

fn ty(dims: &[usize]) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(dims),
        layout: layout_of(dims),
    }
}

fn layout_of(dims: &[usize]) -> Layout {
    match dims.len() {
        4 => Layout::NCHW,
        1 => Layout::C,
        _ => Layout::Any,
    }
}

/// The output extent of a window over `[h, w]`, when it leaves at least one position.
fn window_out(
    hw: [usize; 2],
    pads: [usize; 4],
    kernel: usize,
    stride: usize,
) -> Option<[usize; 2]> {
    let axis =
        |n: usize, a: usize, b: usize| (n + a + b).checked_sub(kernel).map(|r| r / stride + 1);
    Some([
        axis(hw[0], pads[0], pads[2])?,
        axis(hw[1], pads[1], pads[3])?,
    ])
}

/// The random graph of `seed` and the shape of its one input.
fn graph(seed: u64) -> (Graph, [usize; 4]) {
    let mut gen = Gen {
        b: Builder::new(&format!("random_{seed}"), seed),
        layers: 0,
        outputs: Vec::new(),
    };
    let input = [1, 1 + gen.below(4), 5 + gen.below(6), 5 + gen.below(6)];
    let x = gen.b.node("x", Op::Input { index: 0 }, ty(&input), &[]);
    gen.b.g.inputs.push(x.node);
    let mut cur = Act {
        value: x,
        dims: [input[1], input[2], input[3]],
    };
    for _ in 0..3 + gen.below(8) {
        cur = match gen.below(10) {
            0..=2 => {
                let mut y = gen.conv(cur, None);
                if gen.chance(60) {
                    y = gen.batchnorm(y);
                }
                if gen.chance(60) {
                    y = gen.activation(y);
                }
                y
            }
            3 => gen.batchnorm(cur),
            4 => gen.activation(cur),
            5 => gen.affine(cur),
            6 => gen.residual(cur),
            7 => gen.pad(cur),
            8 => gen.conv_transpose_bn(cur),
            _ => {
                let mut y = gen.conv(cur, None);
                while gen.chance(50) {
                    y = gen.affine(y);
                }
                y
            }
        };
        if cur.value != x && gen.chance(10) && !gen.outputs.contains(&cur.value) {
            gen.outputs.push(cur.value);
        }
    }
    if !gen.outputs.contains(&cur.value) {
        gen.outputs.push(cur.value);
    }
    gen.b.g.outputs = gen
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &value)| GraphOutput {
            name: format!("y{i}"),
            value,
        })
        .collect();
    (gen.b.g, input)
}

/// Optimizes the graph of `seed` and compares it with the original; the error says why not.
fn check(seed: u64) -> Result<Vec<PassRecord>, String> {
    let (g, input) = graph(seed);
    validate(&g).map_err(|e| format!("the generated graph is invalid: {e}"))?;
    let mut optimized = g.clone();
    let records = Driver::new(optimize_passes())
        .run(&mut optimized)
        .map_err(|e| e.to_string())?;
    validate(&optimized).map_err(|e| format!("the optimized graph is invalid: {e}"))?;
    let x = Rng(seed ^ 0xA5A5).values(input.iter().product());
    let run = |g: &Graph, what: &str| {
        let plan = prepare(g, &Device::Cpu, &PrepareOptions::default())
            .map_err(|e| format!("{what} graph: {e}"))?;
        plan.run_once(&[("x".into(), Tensor::f32(input.to_vec(), x.clone()))])
            .map_err(|e| format!("{what} graph: {e}"))
    };
    let (expected, actual) = (run(&g, "original")?, run(&optimized, "optimized")?);
    for ((name, e), (_, a)) in expected.iter().zip(&actual) {
        if e.shape != a.shape {
            return Err(format!(
                "{name}: shape {:?}, expected {:?}",
                a.shape, e.shape
            ));
        }
        let (a, e) = (a.as_f32().unwrap(), e.as_f32().unwrap());
        let err = rel_l2(a, e);
        let negligible = e.iter().chain(a).all(|v| v.abs() < 1e-6);
        if !(err < 1e-5 || negligible) {
            return Err(format!("{name}: relative L2 error {err:e}"));
        }
    }
    Ok(records)
}

#[test]
fn optimized_random_graphs_compute_what_the_originals_do() {
    let mut failures = Vec::new();
    let mut applied = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..GRAPHS {
        let seed = 0x9E3779B97F4A7C15u64.wrapping_mul(i + 1) | 1;
        match catch_unwind(AssertUnwindSafe(|| check(seed))) {
            Ok(Ok(records)) => {
                for r in records {
                    *applied.entry(r.pass).or_default() += r.applied;
                }
            }
            Ok(Err(message)) => failures.push(format!("seed {seed:#x}: {message}")),
            Err(_) => failures.push(format!("seed {seed:#x}: panicked (see above)")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The generator must reach every rewrite it was written to exercise.
    for pass in [
        "fold_batchnorm",
        "fold_conv_affine",
        "fuse_pad",
        "fuse_conv_epilogue",
    ] {
        let n = applied.get(pass).copied().unwrap_or(0);
        assert!(n > 0, "{pass} never applied: {applied:?}");
    }
}
