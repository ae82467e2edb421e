//! A plain WASI command: a well-formed component that is not a grader.

fn main() {
    println!("I am not a grader");
}
