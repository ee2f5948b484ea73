//! raft-cli: see the library (`raft_cli`) for everything; this only sets the exit code.
fn main() {
    std::process::exit(raft_cli::main_with_args(std::env::args_os()));
}
