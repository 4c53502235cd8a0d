fn main() -> std::process::ExitCode {
    splitdns::cli::main()
}
