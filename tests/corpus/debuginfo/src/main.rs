//! Prints one line. On Windows it asks combase.dll (a system DLL that the
//! windows-sys crate links, e.g. in fd-find) for the current process's id,
//! linked the way windows-sys links it: raw-dylib, no import library.

#[cfg(windows)]
#[link(name = "combase.dll", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    fn CoGetCurrentProcess() -> u32;
}

#[cfg(windows)]
fn process_token() -> u32 {
    // SAFETY: CoGetCurrentProcess takes no arguments and has no preconditions.
    unsafe { CoGetCurrentProcess() }
}

#[cfg(not(windows))]
fn process_token() -> u32 {
    std::process::id()
}

fn main() {
    // One line for every invocation, `--version` included (the smoke check reads it).
    let known = process_token() != 0;
    println!("{} {} process known: {known}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
}
