use std::process::ExitCode;

/// 1 MB of deterministic, moderately compressible data (xorshift noise over a small alphabet).
fn generate(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(b'a' + (state % 16) as u8);
    }
    out
}

fn selftest() -> Result<usize, String> {
    let data = generate(1_000_000);
    let compressed = zstd::encode_all(&data[..], 3).map_err(|e| format!("compress: {e}"))?;
    let restored = zstd::decode_all(&compressed[..]).map_err(|e| format!("decompress: {e}"))?;
    if restored != data {
        return Err("round trip mismatch".into());
    }
    Ok(compressed.len())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("selftest") => match selftest() {
            Ok(n) => {
                println!("ok {n}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("corpus-zstd: selftest failed: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: corpus-zstd --version | selftest");
            ExitCode::from(2)
        }
    }
}
