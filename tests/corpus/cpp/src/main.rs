use std::process::ExitCode;

extern "C" {
    fn corpus_sorted_words(out: *mut u8, size: i32) -> i32;
}

fn sorted_words() -> Option<String> {
    let mut buffer = [0u8; 64];
    // SAFETY: the C++ side writes at most `size` bytes, NUL included, and returns the length.
    let length = unsafe { corpus_sorted_words(buffer.as_mut_ptr(), buffer.len() as i32) };
    usize::try_from(length).ok().map(|n| String::from_utf8_lossy(&buffer[..n]).into_owned())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("selftest") => match sorted_words() {
            Some(words) => {
                println!("ok {words}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: the C++ side failed");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: corpus-cpp selftest");
            ExitCode::from(2)
        }
    }
}
