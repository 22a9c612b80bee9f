//! Running child processes.
//!
//! Every command that changes something is echoed on stderr (`$ program
//! args`, with the environment variables it sets) before it runs, and a
//! non-zero exit status becomes an error that names the command. Probes
//! (`probe`) run quietly: they only ask whether something answers.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `command` with inherited stdio; fails unless it exits with status 0.
pub fn run(command: &mut Command) -> Result<()> {
    let line = echo(command);
    let status = command
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Runs `command` and returns its stdout; stderr is inherited. Fails unless
/// it exits with status 0.
pub fn output(command: &mut Command) -> Result<String> {
    let line = echo(command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !output.status.success() {
        bail!("`{line}` failed with {}", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Runs `command` and returns its stdout, holding back its stderr unless it
/// fails (for tools that print warnings nobody can act on). Fails unless it
/// exits with status 0; the error then carries the command's stderr.
pub fn capture(command: &mut Command) -> Result<String> {
    let line = echo(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "`{line}` failed with {}:\n{}",
            output.status,
            stderr.trim_end()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Runs `command` quietly (no echo, no stderr) and returns its stdout if it
/// started and exited with status 0.
pub fn probe(command: &mut Command) -> Option<String> {
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}

/// Prints the command line on stderr and returns it for error messages.
pub fn echo(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    words.push(quote(&command.get_program().to_string_lossy()));
    words.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    let line = words.join(" ");
    eprintln!("$ {line}");
    line
}

/// Quotes a word for display when a shell would split or expand it.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_shown_as_they_are() {
        assert_eq!(
            quote("--target-dir=target/static"),
            "--target-dir=target/static"
        );
    }

    #[test]
    fn words_with_spaces_or_quotes_are_quoted_for_a_shell() {
        assert_eq!(quote("-C target-feature"), "'-C target-feature'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
