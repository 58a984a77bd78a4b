//! Replays the corpus the fuzzing campaign found (`fuzz/corpus/<target>/`, committed) through
//! each target: what once passed must still pass, and a crash the campaign found, kept there
//! with its fix, stays fixed.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn every_committed_input_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in scimtrail_fuzzing::TARGETS {
        let folder = corpus.join(name);
        let entries = std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let input = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            target(&input);
            replayed += 1;
        }
        assert!(replayed > 0, "fuzz/corpus/{name} is empty");
        eprintln!("{name}: {replayed} inputs replayed");
    }
}
