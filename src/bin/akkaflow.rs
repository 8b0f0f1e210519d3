//! The `akkaflow` binary: parses arguments and hands over to the library.

fn main() {
    std::process::exit(akkaflow::cli::main());
}
