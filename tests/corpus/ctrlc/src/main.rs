use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).expect("cannot set the Ctrl-C handler");
    println!("handler set, stopped: {}", stop.load(Ordering::SeqCst));
}
