use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=answer.h");
    let bindings = bindgen::Builder::default().header("answer.h").generate().expect("bindgen ran");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("answer.rs");
    bindings.write_to_file(out).expect("bindings written");
}
