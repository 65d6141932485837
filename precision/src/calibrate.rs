//! Calibration: the CPU runtime runs the graph over sample inputs while an observer records, for
//! every float value a step computes and for every float graph input, its min, max and a
//! histogram of |x| (`crate::histogram`), which the calibrators turn into
//! int8 scales. The statistics are cached as JSON under a key that hashes everything they
//! depend on, so a second compile with the same model, preprocessing, images and input shapes
//! skips the runs.

use crate::calibrators::{scale, Calibrator};
use crate::histogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use temblor_ir::{Error, Graph, Result};
use temblor_runtime::{
    prepare, Device, Observer, PrepareOptions, RuntimeError, StepInfo, Tensor, TensorData,
    ValueView,
};
use temblor_tools::progress;

/// Changes whenever what is collected or how it is stored changes, so old caches miss.
const FORMAT: &str = "temblor calibration v1";

/// What one value took over all samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueStats {
    /// The smallest and largest finite element (0 when there was none).
    pub min: f32,
    pub max: f32,
    /// How many elements were NaN or infinite (left out of min, max and the histogram).
    pub non_finite: u64,
    pub histogram: Histogram,
}

impl Default for ValueStats {
    fn default() -> ValueStats {
        ValueStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            non_finite: 0,
            histogram: Histogram::default(),
        }
    }
}

impl ValueStats {
    fn add(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            } else {
                self.non_finite += 1;
            }
        }
        self.histogram.add(values);
    }

    /// Zero instead of the empty range's infinities, which JSON cannot hold.
    fn finish(&mut self) {
        if self.min > self.max {
            (self.min, self.max) = (0.0, 0.0);
        }
    }
}

/// Statistics of every float value of a graph, by value name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    values: BTreeMap<String, ValueStats>,
}

impl Stats {
    /// Every value's statistics, by name in sorted order.
    pub fn values(&self) -> impl Iterator<Item = (&String, &ValueStats)> {
        self.values.iter()
    }

    pub fn get(&self, name: &str) -> Option<&ValueStats> {
        self.values.get(name)
    }

    /// The int8 scale `calibrator` chooses for value `name`; `None` when it was not observed.
    pub fn scale(&self, name: &str, calibrator: Calibrator) -> Option<f32> {
        self.get(name)
            .map(|s| scale(calibrator.threshold(&s.histogram)))
    }

    /// Records `t` under `name` when it holds floats.
    fn record(&mut self, name: &str, t: &Tensor) {
        let widened: Vec<f32>;
        let values = match &t.data {
            TensorData::F32(v) => v.as_slice(),
            TensorData::F16(v) => {
                widened = v.iter().map(|h| h.to_f32()).collect();
                &widened
            }
            TensorData::BF16(v) => {
                widened = v.iter().map(|h| h.to_f32()).collect();
                &widened
            }
            TensorData::F64(v) => {
                widened = v.iter().map(|&x| x as f32).collect();
                &widened
            }
            _ => return,
        };
        self.values.entry(name.to_string()).or_default().add(values);
    }
}

/// Records the outputs of every step.
struct Recorder<'a>(&'a mut Stats);

impl Observer for Recorder<'_> {
    fn step(
        &mut self,
        _: usize,
        step: &StepInfo,
        _: &[Option<ValueView>],
        outputs: &[ValueView],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        for (name, t) in step.output_names.iter().zip(outputs) {
            // Only float values have statistics: the others need not leave the device.
            if t.dtype().is_float() {
                self.0.record(name, &*t.to_host()?);
            }
        }
        Ok(())
    }
}

/// Runs `graph` on each batch (named graph inputs) on `threads` threads (0: one per core) and
/// returns the statistics of every float value over all of them.
pub fn collect(graph: &Graph, batches: &[Vec<(String, Tensor)>], threads: usize) -> Result<Stats> {
    let options = PrepareOptions {
        threads,
        every_value: true,
        ..PrepareOptions::default()
    };
    let plan = prepare(graph, &Device::Cpu, &options)
        .map_err(|e| Error::internal(format!("calibration of '{}': {e}", graph.name)))?;
    let mut state = plan.new_state();
    let mut stats = Stats::default();
    let bar = progress::bar(batches.len(), "calibrating");
    for (i, batch) in batches.iter().enumerate() {
        for (name, t) in batch {
            stats.record(name, t);
        }
        plan.run_observed(&mut state, batch, &mut Recorder(&mut stats))
            .map_err(|e| Error::bad_input(format!("calibration sample {}: {e}", i + 1)))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    for s in stats.values.values_mut() {
        s.finish();
    }
    Ok(stats)
}

/// The cache file's contents.
#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    stats: Stats,
}

/// The statistics stored in `cache` when it was written under `key`; otherwise (no file, another
/// key, an unreadable file) collected afresh and stored there. Failing to store them is a
/// warning, not an error: the cache only saves time.
pub fn load_or_collect(
    cache: &Path,
    key: &str,
    graph: &Graph,
    batches: &[Vec<(String, Tensor)>],
    threads: usize,
) -> Result<Stats> {
    let hit = std::fs::read(cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Cached>(&bytes).ok())
        .filter(|c| c.key == key);
    if let Some(cached) = hit {
        return Ok(cached.stats);
    }
    let stats = collect(graph, batches, threads)?;
    let cached = Cached {
        key: key.to_string(),
        stats,
    };
    if let Err(e) = store(cache, &cached) {
        eprintln!(
            "warning: calibration cache {} not written: {e}",
            cache.display()
        );
    }
    Ok(cached.stats)
}

/// Writes through a temporary file beside `cache`, so a reader never sees half a file.
fn store(cache: &Path, cached: &Cached) -> std::io::Result<()> {
    let dir = cache.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, cached)?;
    tmp.persist(cache).map_err(|e| e.error)?;
    Ok(())
}

/// A hex key over everything the statistics depend on: the model's bytes (a Paddle program's
/// `.pdiparams` beside it too, or every file of a model directory), the preprocessing, the
/// images' contents in order, and the input dimensions.
pub fn cache_key(
    model: &Path,
    preprocess_key: &str,
    images: &[PathBuf],
    input_dims: &str,
) -> Result<String> {
    let mut h = Fnv128::default();
    h.part(FORMAT.as_bytes());
    for file in model_files(model)? {
        h.part(&read(&file)?);
    }
    h.part(preprocess_key.as_bytes());
    for image in images {
        h.part(&read(image)?);
    }
    h.part(input_dims.as_bytes());
    Ok(format!("{:032x}", h.0))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))
}

/// The files a model is read from.
fn model_files(model: &Path) -> Result<Vec<PathBuf>> {
    if model.is_dir() {
        let entries = std::fs::read_dir(model)
            .map_err(|e| Error::bad_input(format!("{}: {e}", model.display())))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::bad_input(format!("{}: {e}", model.display())))?
                .path();
            if path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        return Ok(files);
    }
    let mut files = vec![model.to_path_buf()];
    if model.extension().is_some_and(|e| e == "pdmodel") {
        let params = model.with_extension("pdiparams");
        if params.is_file() {
            files.push(params);
        }
    }
    Ok(files)
}

/// FNV-1a over 128 bits: not cryptographic, but a cache key only has to tell honest inputs
/// apart, and 128 bits make an accidental collision negligible.
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl Fnv128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// One input, length first, so no two splits of the same bytes hash alike.
    fn part(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}
