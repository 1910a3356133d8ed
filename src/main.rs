//! The `rosterd` binary: everything lives in the library; see `rosterd --help`.

fn main() {
    std::process::exit(rosterd::cli::main());
}
