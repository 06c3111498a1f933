//! Replays the committed fuzz corpora and regression inputs through the same harnesses the
//! cargo-fuzz targets call, so plain `cargo test` on stable Rust covers them.

use std::path::{Path, PathBuf};

use raftwal::sim::fuzz::{crash_model, decode};

fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = corpus_files(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "the {target} seed corpus is missing");
    let regressions = corpus_files(&root.join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let input = std::fs::read(path).unwrap();
        eprintln!("{target}: {}", path.display());
        harness(&input);
    }
}

#[test]
fn decode_corpus_and_regressions() {
    replay("decode", decode);
}

#[test]
fn crash_model_corpus_and_regressions() {
    replay("crash_model", crash_model);
}

/// Paths of the files in a corpus or regressions folder, in name order.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|entry| Some(entry.ok()?.path())).filter(|path| path.is_file()).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
