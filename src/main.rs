fn main() {
    std::process::exit(mailwave::cli::main());
}
