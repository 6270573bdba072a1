fn main() {
    // C++ through cc-rs: it asks the target's C++ compiler for the sources and links its C++
    // runtime (libstdc++ for gnu targets, libc++ for Apple's) with `cargo:rustc-link-lib`.
    cc::Build::new().cpp(true).file("src/words.cpp").compile("words");
    println!("cargo:rerun-if-changed=src/words.cpp");
}
