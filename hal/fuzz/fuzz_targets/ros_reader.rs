//! The schema-driven reader on arbitrary (schema, bytes): never a panic, validation never
//! allocates, decoding never allocates more than a bounded multiple of the payload's size.
//!
//! Input: byte 0 picks the mode. Even: bytes 1..3 pick one of the built-in types, the rest is
//! the payload. Odd: everything up to the first NUL is `ros2msg` schema text for type
//! `fuzz/msg/T` (definitions of any other type may follow as `MSG:` sections, the built-in
//! ones resolve too), the rest is the payload.
#![no_main]
use hal::ros::{FieldPath, Registry, check, decode};
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes this thread allocates. Sound: every call forwards unchanged to `System`,
/// which upholds `GlobalAlloc`'s contract; the counter is a thread-local `Cell` touched with
/// `try_with` (never allocating, never panicking during thread teardown).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: see the type's doc: pure forwarding to `System` plus a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + l.size()));
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with `l` (via `alloc` above).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + n));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocated() -> usize {
    ALLOCATED.with(|a| a.get())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let builtin = Registry::builtin();
    let (layout, payload) = if mode % 2 == 0 {
        if rest.len() < 2 {
            return;
        }
        let names: Vec<&str> = builtin.names().collect();
        let i = u16::from_le_bytes([rest[0], rest[1]]) as usize % names.len();
        (builtin.layout(names[i]).expect("built-in types resolve"), &rest[2..])
    } else {
        let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let Ok(text) = std::str::from_utf8(&rest[..cut]) else {
            return;
        };
        let Ok(reg) = builtin.with_schema("fuzz/msg/T", text) else {
            return;
        };
        let _ = reg.schema_text("fuzz/msg/T");
        let _ = reg.type_hash("fuzz/msg/T");
        match reg.layout("fuzz/msg/T") {
            Ok(l) => (l, &rest[(cut + 1).min(rest.len())..]),
            Err(_) => return,
        }
    };
    let before = allocated();
    let checked = check(&layout, payload);
    let after = allocated();
    if checked.is_ok() {
        assert_eq!(after, before, "validation allocated {} bytes", after - before);
    }
    let before = allocated();
    let decoded = decode(&layout, payload);
    let used = allocated() - before;
    assert_eq!(decoded.is_ok(), checked.is_ok(), "decode and check disagree");
    if let Ok(v) = decoded {
        // a Value (and its share of a growing Vec) per wire byte at most, plus headers
        assert!(used <= 160 * payload.len() + 4096, "decode allocated {used} for {} bytes", payload.len());
        let _ = v.numbers();
        let _ = v.render(4);
        if let Ok(p) = FieldPath::parse("header.stamp") {
            let _ = p.select(&v);
        }
    }
});
