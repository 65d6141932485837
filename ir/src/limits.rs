//! What a model may claim before temblor refuses it: the size of one value, the peak memory of a
//! run, and a loop's trip count. A hostile or broken file (a tensor of 10^12 elements, a Resize
//! to 100000x100000, a Loop of 2^62 iterations) is then an error naming the node before anything
//! is allocated, not an out-of-memory abort or a run that never ends.
//!
//! The defaults are generous: far above any vision model (the largest activation of a 1280x1280
//! YOLO is under 1 GB) and below what a 64 GB machine can hold. They are set once per process:
//! by the CLI's `--max-value-bytes`, `--max-peak-bytes` and `--max-loop-iterations`, or by the
//! environment variables of the same names (`TEMBLOR_MAX_VALUE_BYTES`, ...), read at first use.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one tensor.
    pub value_bytes: u64,
    /// Bytes of the values alive at once during a run (compile-time estimate from the inferred
    /// shapes; unknown dims count as 1).
    pub peak_bytes: u64,
    /// Iterations of one Loop.
    pub loop_iterations: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            value_bytes: 16 << 30,
            peak_bytes: 48 << 30,
            loop_iterations: 1 << 24,
        }
    }
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Environment variables read when no limits were set, each a byte or iteration count.
pub const ENV_VALUE_BYTES: &str = "TEMBLOR_MAX_VALUE_BYTES";
pub const ENV_PEAK_BYTES: &str = "TEMBLOR_MAX_PEAK_BYTES";
pub const ENV_LOOP_ITERATIONS: &str = "TEMBLOR_MAX_LOOP_ITERATIONS";

impl Limits {
    /// The defaults, each replaced by its environment variable where that holds a number.
    pub fn from_env() -> Result<Limits, String> {
        let d = Limits::default();
        let read = |name: &str, default: u64| match std::env::var(name) {
            Ok(text) => parse_count(&text).map_err(|e| format!("{name}: {e}")),
            Err(_) => Ok(default),
        };
        Ok(Limits {
            value_bytes: read(ENV_VALUE_BYTES, d.value_bytes)?,
            peak_bytes: read(ENV_PEAK_BYTES, d.peak_bytes)?,
            loop_iterations: read(ENV_LOOP_ITERATIONS, d.loop_iterations)?,
        })
    }

    /// Makes `self` the process's limits; false when they were already fixed (set before, or
    /// read by a check).
    pub fn install(self) -> bool {
        LIMITS.set(self).is_ok()
    }

    /// The process's limits: as installed, else from the environment (an unreadable variable
    /// leaves its default; the CLI reports it before anything runs).
    pub fn get() -> Limits {
        *LIMITS.get_or_init(|| Limits::from_env().unwrap_or_default())
    }

    /// Refuses a value of `dims` elements of `elem_bytes` each above the value limit; also when
    /// the count overflows. `dims` that are unknown are left out by the caller.
    pub fn check_value(&self, dims: &[usize], elem_bytes: usize) -> Result<(), String> {
        let bytes = dims
            .iter()
            .try_fold(elem_bytes as u128, |a, &d| a.checked_mul(d as u128));
        match bytes {
            Some(b) if b <= self.value_bytes as u128 => Ok(()),
            _ => Err(format!(
                "a value of shape {dims:?} would take {} bytes, above the limit of {} \
                 (--max-value-bytes)",
                bytes.map_or("more than 2^128".to_string(), |b| b.to_string()),
                self.value_bytes
            )),
        }
    }

    /// Refuses a loop of `trips` iterations above the limit.
    pub fn check_loop(&self, trips: i64) -> Result<(), String> {
        if trips > 0 && trips as u64 > self.loop_iterations {
            return Err(format!(
                "a loop of {trips} iterations, above the limit of {} (--max-loop-iterations)",
                self.loop_iterations
            ));
        }
        Ok(())
    }
}

/// A count written as digits, optionally with a binary suffix (`16G`, `512M`, `64K`).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        Some((i, 'T' | 't')) => (&t[..i], 40),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("'{text}' is not a count (digits, optionally K, M, G or T)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_binary_suffixes() {
        assert_eq!(parse_count("16G"), Ok(16 << 30));
        assert_eq!(parse_count("100"), Ok(100));
        assert!(parse_count("x").is_err());
        assert!(parse_count("99999999999T").is_err());
    }

    #[test]
    fn overflowing_shapes_are_refused() {
        let l = Limits::default();
        assert!(l.check_value(&[1, 3, 640, 640], 4).is_ok());
        assert!(l.check_value(&[1_000_000, 1_000_000], 4).is_err());
        assert!(l
            .check_value(&[usize::MAX, usize::MAX, usize::MAX], 8)
            .is_err());
        assert!(l.check_loop(1 << 62).is_err());
        assert!(l.check_loop(-1).is_ok());
    }
}
