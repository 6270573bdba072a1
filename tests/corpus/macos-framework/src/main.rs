#[cfg(target_os = "macos")]
fn message() -> String {
    use core_foundation::string::CFString;

    let s = CFString::new("hello from CoreFoundation");
    format!("{} (CFString length {})", s, s.char_len())
}

#[cfg(not(target_os = "macos"))]
fn message() -> String {
    String::from("hello from a non-macOS target (no CoreFoundation)")
}

fn main() {
    if matches!(
        std::env::args().nth(1).as_deref(),
        Some("--version") | Some("-V")
    ) {
        println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        return;
    }
    println!("{}", message());
}
