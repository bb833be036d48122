//! Running external commands. Commands that change something are echoed before they run and
//! named in the error when they fail; probes of installed state run silently.

use std::{
    ffi::OsStr,
    io,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Echoes `cmd`, runs it with inherited stdio and fails, naming the command, unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Like [`run`], but also returns what `cmd` printed on stdout (still shown as it arrives).
pub fn run_tee(cmd: &mut Command) -> Result<String> {
    use std::io::{BufRead as _, BufReader, Write as _};

    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let mut captured = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut out = io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.with_context(|| format!("reading the output of `{shown}`"))?;
            let _ = writeln!(out, "{line}");
            captured.push_str(&line);
            captured.push('\n');
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(captured)
}

/// Echoes `cmd` and replaces this process with it, so signals (Ctrl-C) and the exit status
/// belong to the program itself. Returns only on failure.
pub fn exec(cmd: &mut Command) -> anyhow::Error {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let err = cmd.exec();
    anyhow::Error::new(err).context(format!("could not start `{shown}`"))
}

/// Runs `cmd` silently to inspect installed state. `Ok(None)` when the program does not exist,
/// which for a probe just means "not installed".
pub fn probe(cmd: &mut Command) -> Result<Option<Output>> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not start `{}`", describe(cmd))),
    }
}

/// The stdout of a probe that succeeded, else `None`.
pub fn probe_stdout(cmd: &mut Command) -> Result<Option<String>> {
    Ok(probe(cmd)?
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Runs `cmd` silently for information it prints. `Ok(None)` when the program does not exist;
/// an error, with its stderr, when it runs and fails.
pub fn query(cmd: &mut Command) -> Result<Option<String>> {
    let Some(output) = probe(cmd)? else {
        return Ok(None);
    };
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// `cmd` as a shell-like line: explicit environment (except `PATH`, which every child gets),
/// the program's file name, and the arguments, quoted where a shell would need it.
pub fn describe(cmd: &Command) -> String {
    let env = cmd
        .get_envs()
        .filter(|(key, _)| *key != "PATH")
        .filter_map(|(key, value)| Some(format!("{}={}", key.to_string_lossy(), quote(value?))));
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program());
    let words = std::iter::once(quote(program)).chain(cmd.get_args().map(quote));
    env.chain(words).collect::<Vec<_>>().join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_env_program_name_and_quoted_args() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("PATH", "/bin")
            .args(["test", "--", "it's a filter", ""]);
        assert_eq!(
            describe(&cmd),
            r"LLVM_PREFIX=/usr/lib/llvm-22 cargo test -- 'it'\''s a filter' ''"
        );
    }

    #[test]
    fn probe_of_a_missing_program_is_none() {
        let found = probe(&mut Command::new("vigil-xtask-no-such-program"));
        assert!(matches!(found, Ok(None)));
    }
}
