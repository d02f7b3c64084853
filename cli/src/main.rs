//! `bus` with busline's built-in stop kinds. A user's repository builds its own `bus` the same
//! way, adding its kinds: `busline_cli::main(busline_builtin::registry().with(my_stop::kind()))`.

// Passengers are many small allocations; see the workspace's note on mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    busline_cli::main(busline_builtin::registry())
}
