//! The elementwise op kinds: functions of one tensor and of two broadcast tensors.

use serde::{Deserialize, Serialize};

/// Elementwise functions of one tensor. `Not` is on bool; the others on numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Identity,
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Sqrt,
    Exp,
    Log,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Sign,
    Not,
    Softplus,
    Mish,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    Cos,
    Sin,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 21] = [
        UnaryOp::Identity,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sign,
        UnaryOp::Not,
        UnaryOp::Softplus,
        UnaryOp::Mish,
        UnaryOp::HardSwish,
        UnaryOp::Cos,
        UnaryOp::Sin,
    ];

    /// The ONNX op type of the same meaning.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Identity => "Identity",
            UnaryOp::Relu => "Relu",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Erf => "Erf",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Neg => "Neg",
            UnaryOp::Abs => "Abs",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Floor => "Floor",
            UnaryOp::Ceil => "Ceil",
            UnaryOp::Round => "Round",
            UnaryOp::Sign => "Sign",
            UnaryOp::Not => "Not",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Mish => "Mish",
            UnaryOp::HardSwish => "HardSwish",
            UnaryOp::Cos => "Cos",
            UnaryOp::Sin => "Sin",
        }
    }
}

/// Elementwise functions of two broadcast tensors. Comparisons give bool; `And`/`Or`/`Xor`
/// take bool; `PRelu` is `a` where positive, else `a * b` (b is the slope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    /// Integer remainder with the divisor's sign (ONNX Mod, fmod 0).
    Mod,
    /// C `fmod`: the dividend's sign (ONNX Mod, fmod 1).
    Fmod,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
    PRelu,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 18] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Mod,
        BinaryOp::Fmod,
        BinaryOp::Equal,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::PRelu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
            BinaryOp::Min => "Min",
            BinaryOp::Max => "Max",
            BinaryOp::Mod => "Mod",
            BinaryOp::Fmod => "Fmod",
            BinaryOp::Equal => "Equal",
            BinaryOp::Greater => "Greater",
            BinaryOp::GreaterOrEqual => "GreaterOrEqual",
            BinaryOp::Less => "Less",
            BinaryOp::LessOrEqual => "LessOrEqual",
            BinaryOp::And => "And",
            BinaryOp::Or => "Or",
            BinaryOp::Xor => "Xor",
            BinaryOp::PRelu => "PRelu",
        }
    }

    /// The result is bool whatever the operands are.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
                | BinaryOp::Less
                | BinaryOp::LessOrEqual
        )
    }
}
