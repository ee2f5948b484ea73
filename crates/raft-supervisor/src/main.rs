//! `raft-supervisor`: see the library docs.
fn main() {
    std::process::exit(raft_supervisor::cli::main(std::env::args_os()));
}
