//! A crate that keeps line tables in release builds, for the split
//! debug-info tests: `corpus_checksum` is a known function whose address
//! the tests symbolicate back to this file and line.

use std::env;

#[inline(never)]
fn corpus_checksum(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for byte in bytes {
        sum = sum.rotate_left(5) ^ u32::from(*byte);
    }
    sum
}

fn main() {
    let text = env::args().skip(1).collect::<Vec<_>>().join(" ");
    let value = corpus_checksum(std::hint::black_box(text.as_bytes()));
    println!("checksum {value:08x}");
}
