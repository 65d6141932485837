//! Finding a Paddle model's program and parameters among Paddle's layouts: `__model__` with a
//! combined `__params__` or one file per parameter, `*.pdmodel` with `*.pdiparams`, and Paddle
//! 3's `inference.json` (PIR) with `inference.pdiparams`.

use std::path::{Path, PathBuf};

pub(super) enum Params {
    Combined(PathBuf),
    /// One file per persistable variable, named after it, in this directory.
    Separate(PathBuf),
    /// Graph only: no parameter file next to the program.
    Missing,
}

pub(super) struct Files {
    pub program: PathBuf,
    pub params: Params,
}

pub(super) fn locate(path: &Path) -> Result<Files, String> {
    let program = if path.is_dir() {
        program_in(path)?
    } else {
        path.to_path_buf()
    };
    let dir = program.parent().unwrap_or(Path::new(".")).to_path_buf();
    let params = if program.file_name().is_some_and(|n| n == "__model__") {
        if dir.join("__params__").is_file() {
            Params::Combined(dir.join("__params__"))
        } else {
            Params::Separate(dir)
        }
    } else {
        let combined = program.with_extension("pdiparams");
        if combined.is_file() {
            Params::Combined(combined)
        } else {
            Params::Missing
        }
    };
    Ok(Files { program, params })
}

fn program_in(dir: &Path) -> Result<PathBuf, String> {
    let legacy = dir.join("__model__");
    if legacy.is_file() {
        return Ok(legacy);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "pdmodel")
                || (p.extension().is_some_and(|x| x == "json") && starts_pir(p))
        })
        .collect();
    found.sort();
    match found.len() {
        0 => Err(
            "the directory holds neither a temblor package (package.json) nor a Paddle program \
             (`__model__`, `*.pdmodel` or a PIR `inference.json`)"
                .into(),
        ),
        1 => Ok(found.remove(0)),
        _ => Err(format!(
            "the directory holds {} programs ({}); name the one to compile",
            found.len(),
            found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether a file's first bytes are those of a PIR program: a JSON object whose first key is
/// `base_code` (Paddle's writer sorts the keys), with or without whitespace.
pub(super) fn is_pir(head: &[u8]) -> bool {
    let compact: Vec<u8> = head
        .iter()
        .take(256)
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact.starts_with(br#"{"base_code":"#)
}

fn starts_pir(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    is_pir(&head[..n])
}
