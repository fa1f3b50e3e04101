fn main() {
    std::process::exit(ferrun::cli::main());
}
