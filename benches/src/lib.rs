//! Criterion benchmarks live in `benches/`; figures are recorded in
//! `README.md` beside this crate.
