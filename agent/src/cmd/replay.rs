//! `vigil replay`: rules over events recorded by `vigil trace --json`, without root or probes.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Write},
    path::Path,
};

use anyhow::{Context as _, Result};
use vigil::output::json::from_json;

use super::rules::RuleArgs;

/// Evaluates the rules over every recorded event in `file` (`-` for stdin) and prints the
/// alerts as JSON lines; returns how many alerts were raised.
pub fn run(file: &Path, rules: &RuleArgs) -> Result<u64> {
    let ruleset = rules.load()?;
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    };
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut alerts = Vec::new();
    let (mut events, mut skipped, mut raised) = (0u64, 0u64, 0u64);
    for (index, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line)
            .map_err(anyhow::Error::from)
            .and_then(|value| from_json(&value).map_err(anyhow::Error::from));
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                skipped += 1;
                tracing::warn!(line = index + 1, %error, "not a vigil trace event; skipped");
                continue;
            }
        };
        events += 1;
        alerts.clear();
        ruleset.evaluate(&event, &mut alerts);
        for alert in &alerts {
            serde_json::to_writer(&mut stdout, alert)?;
            stdout.write_all(b"\n")?;
            raised += 1;
        }
    }
    stdout.flush()?;
    tracing::info!(events, alerts = raised, skipped, "replay finished");
    Ok(raised)
}
