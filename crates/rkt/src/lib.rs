//! The parts of the `rkt` command line that are useful outside the binary: rkt's `run` and
//! `prepare` argument grammar ([`grammar`]), which the fuzz targets exercise too.

#![forbid(unsafe_code)]

pub mod grammar;
