include!(concat!(env!("OUT_DIR"), "/answer.rs"));

fn main() {
    println!("answer {ANSWER}");
}
