//! The architecture's boundaries, checked on the source: the operator observes and interprets,
//! serin-core decides without I/O.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("readable source directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_operator_chooses_no_phase() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    assert!(files.len() > 10, "the operator's sources are found");
    let offenders: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file).expect("readable source");
            text.lines()
                .enumerate()
                .filter(|(_, line)| line.contains("Phase::"))
                .map(|(n, line)| format!("{}:{}: {}", file.display(), n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "phases are decided in serin-core, not in the operator:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn serin_core_has_no_io_dependencies() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/Cargo.toml");
    let text = fs::read_to_string(manifest).expect("serin-core's Cargo.toml");
    for forbidden in ["tokio", "kube", "reqwest", "hyper", "axum"] {
        assert!(
            !text.lines().any(|line| line.trim_start().starts_with(forbidden)),
            "serin-core depends on {forbidden}"
        );
    }
}
