//! A crate that keeps line tables in release builds, for the split
//! debug-info tests: `corpus_checksum` is a known function whose address
//! the tests symbolicate back to this file and line, and `crash` panics in
//! `corpus_crash` after saying where the binary is loaded, so a test can
//! symbolicate the backtrace the stripped binary prints.

use std::env;

#[inline(never)]
fn corpus_checksum(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for byte in bytes {
        sum = sum.rotate_left(5) ^ u32::from(*byte);
    }
    sum
}

/// Where this executable's first mapping starts (its load base), from /proc/self/maps.
fn load_base() -> Option<String> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let exe = exe.to_str()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|line| line.ends_with(exe))?;
    Some(line.split('-').next()?.to_string())
}

#[inline(never)]
fn corpus_crash(depth: u32) -> u32 {
    if std::hint::black_box(depth) > 0 {
        panic!("corpus crash at depth {depth}");
    }
    depth
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("crash") {
        eprintln!("load base 0x{}", load_base().unwrap_or_default());
        corpus_crash(3);
    }
    let text = args.join(" ");
    let value = corpus_checksum(std::hint::black_box(text.as_bytes()));
    println!("checksum {value:08x}");
}
