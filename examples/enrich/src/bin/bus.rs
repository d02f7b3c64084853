//! This repository's `bus`: busline's built-in stop kinds and enrich.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    busline_cli::main(busline_builtin::registry().with(colors_enrich::kind()))
}
