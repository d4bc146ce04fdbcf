//! Prints the name pprof gives each `system_name` read from stdin (one per line), in every
//! naming mode: a line `MODE<TAB>NAME` per mode, in the order default, templates, full. For
//! comparing with the Go demangler over real symbol tables (`tests/benches/names-vs-go.sh`).
use std::io::{BufRead, BufWriter, Write};

use pprofhouse_transform::symbolize::{pprof_name, Demangle};

fn main() -> std::io::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().split(b'\n') {
        let sys = line?;
        for mode in [Demangle::Default, Demangle::Templates, Demangle::Full] {
            out.write_all(mode.as_str().as_bytes())?;
            out.write_all(b"\t")?;
            out.write_all(&pprof_name(b"", &sys, mode))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}
