//! The `keyproof` command.

fn main() -> std::process::ExitCode {
    keyproof::cli::main()
}
