//! What a package records of how its model wants its images and what its classes are called
//! (`temblor_ir::package::PREPROCESS` and `LABELS`), so that a command given a package needs
//! neither restated.

use super::PreprocessConfig;
use std::path::Path;
use temblor_ir::{package, Error, Result};

impl PreprocessConfig {
    /// Writes the config as temblor's YAML into the package directory `dir`, headed by where it
    /// came from. The labels are left to `labels.txt` ([`write_labels`]), their one place in a
    /// package.
    pub fn write_to_package(&self, dir: &Path, source: &Path) -> Result<()> {
        let tensors_only = PreprocessConfig {
            labels: Vec::new(),
            ..self.clone()
        };
        let yaml = serde_saphyr::to_string(&tensors_only).map_err(|e| {
            Error::internal(format!("cannot serialize the preprocessing config: {e}"))
        })?;
        let text = format!(
            "# How this package's model wants its images, in temblor's preprocessing YAML.\n\
             # Recorded by `temblor compile` from {}; the labels are in {}.\n{yaml}",
            source.display(),
            package::LABELS
        );
        let path = dir.join(package::PREPROCESS);
        std::fs::write(&path, text).map_err(|e| Error::internal(format!("{}: {e}", path.display())))
    }
}

/// Class names by class id from a file holding one a line (`compile --labels`).
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("{}: cannot read the labels: {e}", path.display())))?;
    // Only ASCII whitespace is trimmed: a CTC dictionary's characters include U+3000, the
    // ideographic space (PaddleOCR's ppocr_keys_v1.txt), which is a label, not padding.
    let labels: Vec<String> = text
        .lines()
        .map(|l| {
            l.trim_matches(|c: char| c.is_ascii_whitespace())
                .to_string()
        })
        .collect();
    // A blank line would shift every later class id by one without a trace.
    if let Some(line) = labels.iter().position(String::is_empty) {
        return Err(Error::usage(format!(
            "{}: line {} is empty; give one label a line, by class id",
            path.display(),
            line + 1
        )));
    }
    if labels.is_empty() {
        return Err(Error::usage(format!("{}: no labels", path.display())));
    }
    Ok(labels)
}

/// The labels a package recorded; none when it recorded none (packages written before labels
/// were recorded, or models compiled without any).
pub fn package_labels(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(package::LABELS);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    read_labels(&path).map_err(|e| Error::bad_input(format!("package {}: {}", dir.display(), e)))
}

/// Records `labels` in the package directory `dir`, one a line.
pub fn write_labels(labels: &[String], dir: &Path) -> Result<()> {
    let path = dir.join(package::LABELS);
    let mut text = labels.join("\n");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| Error::internal(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess_config::{ChannelOrder, InputNames, Interpolation, Layout, Pad, Resize};

    /// What compile writes, eval reads back as the same config (labels travel separately).
    #[test]
    fn a_recorded_config_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let config = PreprocessConfig {
            resize: Some(Resize::to([416, 416], Interpolation::Cubic)),
            pad: Some(Pad {
                size: None,
                stride: Some(32),
                value: [0.5, 0.0, -1.0],
            }),
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            channels: ChannelOrder::Bgr,
            layout: Layout::Nhwc,
            inputs: InputNames {
                image: Some("image".into()),
                ..InputNames::default()
            },
            labels: vec!["person".into(), "bicycle".into()],
        };
        config
            .write_to_package(dir.path(), Path::new("infer_cfg.yml"))
            .unwrap();
        write_labels(&config.labels, dir.path()).unwrap();
        let back = PreprocessConfig::load(&dir.path().join(package::PREPROCESS)).unwrap();
        assert_eq!(
            back,
            PreprocessConfig {
                labels: Vec::new(),
                ..config.clone()
            }
        );
        assert_eq!(package_labels(dir.path()).unwrap(), config.labels);
    }

    #[test]
    fn a_blank_label_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "cat\n\ndog\n").unwrap();
        let e = read_labels(&path).unwrap_err();
        assert!(e.to_string().contains("line 2 is empty"), "{e}");
    }
}
