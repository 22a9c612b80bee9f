//! `cargo xtask test`: every test, end-to-end tests included.
//!
//! Sets up what the end-to-end tests in `tests/` need (a Docker engine, the
//! images, kubectl v1.35, a built `coxswain`, Debian's `chromium` for the
//! trace viewer's browser test), then runs
//! `cargo test --workspace --no-fail-fast` plus the arguments given after
//! `--`, with these environment variables:
//!
//! * `COXSWAIN_E2E=1`: the end-to-end tests may run (without it they skip);
//! * `COXSWAIN_KUBECTL`: the absolute path of kubectl v1.35;
//! * `COXSWAIN_BIN`: the absolute path of the `coxswain` binary;
//! * `COXSWAIN_CHROMIUM`: the absolute path of the headless browser.
//!
//! The test output passes through unchanged. At the end, one line on stdout
//! sums every test binary's result line: `N passed, M failed`. The command
//! fails when cargo test fails or any test failed.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{apt, docker, exec, host, images, kubectl, run, workspace};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Options {
    /// Arguments passed on to `cargo test`, after `--`.
    #[arg(last = true)]
    args: Vec<OsString>,
}

/// Runs `cargo xtask test`.
pub fn main(options: Options) -> Result<()> {
    docker::ensure_engine()?;
    images::ensure(false)?;
    let kubectl = kubectl::kubectl_path()?;
    let coxswain = run::build_coxswain(false)?;
    if host::which("chromium").is_none() {
        apt::ensure(&["chromium"])?;
    }
    let chromium = host::which("chromium").context("chromium is not on PATH after installing")?;

    let mut test = Command::new(workspace::cargo());
    test.args(["test", "--workspace", "--no-fail-fast"])
        .args(&options.args)
        .env("COXSWAIN_E2E", "1")
        .env("COXSWAIN_KUBECTL", &kubectl)
        .env("COXSWAIN_BIN", &coxswain)
        .env("COXSWAIN_CHROMIUM", &chromium)
        .current_dir(workspace::root())
        .stdout(Stdio::piped());
    let line = exec::echo(&test);
    let mut child = test
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;

    // Pass the output through line by line while adding up the results.
    let mut totals = Totals::default();
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    for text in BufReader::new(stdout).lines() {
        let text = text?;
        println!("{text}");
        totals.add(&text);
    }
    let status = child.wait()?;

    println!("{} passed, {} failed", totals.passed, totals.failed);
    if !status.success() || totals.failed > 0 {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Test counts summed over the result lines of every test binary.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds the counts of a libtest line such as
    /// `test result: ok. 3 passed; 0 failed; 1 ignored; ...`; ignores any
    /// other line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            let (Some(count), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_of_every_test_binary_are_summed() {
        let mut totals = Totals::default();
        totals.add("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; finished in 0.01s");
        totals.add("test result: FAILED. 5 passed; 2 failed; 0 ignored; finished in 1.2s");
        assert_eq!(
            totals,
            Totals {
                passed: 8,
                failed: 2
            }
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        let mut totals = Totals::default();
        totals.add("test kubelet::restarts_a_stopped_container ... ok");
        totals.add("running 3 tests");
        assert_eq!(totals, Totals::default());
    }
}
