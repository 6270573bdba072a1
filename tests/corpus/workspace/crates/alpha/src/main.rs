fn main() {
    if corpus_shared::wants_version() {
        println!("{}", corpus_shared::version_line(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")));
        return;
    }
    println!(
        "{}",
        corpus_shared::greeting_for("alpha", cfg!(feature = "loud"))
    );
}
