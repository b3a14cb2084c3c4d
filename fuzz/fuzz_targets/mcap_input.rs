//! Arbitrary bytes as an episode file given to `demotape`: inspect, selective read, the
//! signal reader used by annotate, and recover must report errors, never panic or allocate
//! from a corrupted length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let input = dir.join(format!("demotape-fuzz-{}.mcap", std::process::id()));
    let output = dir.join(format!("demotape-fuzz-{}-out.mcap", std::process::id()));
    std::fs::write(&input, data).unwrap();
    let _ = annotate::inspect::Inspection::run(&input);
    let _ = annotate::read::read_selected(&input, |_, _| true);
    let _ = annotate::signals::read_signals(&input, &Default::default());
    let _ = std::fs::remove_file(&output);
    let _ = annotate::recover::recover(&input, &output);
});
