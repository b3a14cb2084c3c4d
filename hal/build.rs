//! Embeds the standard ROS 2 interface definitions in `msgs/` (copied from ROS 2 Jazzy, see
//! `msgs/README.md`) as `builtin::MSGS: &[(&str, &str)]` = (`pkg/msg/Type`, `.msg` text).

use std::path::Path;

fn main() {
    // read at run time: `env!` would bake in the path of whichever checkout first built this
    // script, and clones sharing a target dir reuse the compiled script
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("msgs");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    for pkg in std::fs::read_dir(&root).expect("hal/msgs") {
        let pkg = pkg.expect("hal/msgs entry").path();
        let msg_dir = pkg.join("msg");
        if !msg_dir.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", msg_dir.display());
        for f in std::fs::read_dir(&msg_dir).expect("msg dir") {
            let f = f.expect("msg entry").path();
            if f.extension().is_some_and(|e| e == "msg") {
                let name = format!(
                    "{}/msg/{}",
                    pkg.file_name().unwrap().to_str().unwrap(),
                    f.file_stem().unwrap().to_str().unwrap()
                );
                entries.push((name, f));
            }
        }
    }
    entries.sort();
    let mut out = String::from("pub const MSGS: &[(&str, &str)] = &[\n");
    for (name, path) in entries {
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_msgs.rs");
    std::fs::write(dest, out).expect("write builtin_msgs.rs");
}
