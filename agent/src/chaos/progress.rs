//! What `vigil chaos` shows while it runs: on a terminal, a progress bar with the scenario in
//! progress and a line per finished run above it; elsewhere (CI logs), just the lines.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of a chaos run on stderr.
pub struct Progress {
    /// `None` when progress is not wanted at all.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `total` steps when `enabled`; silent otherwise.
    pub fn new(enabled: bool, total: usize) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        // indicatif hides the bar by itself when stderr is not a terminal.
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {elapsed_precise} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Names the scenario now running.
    pub fn running(&self, scenario: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(scenario.to_string());
        }
    }

    /// Reports a finished step with a line and advances the bar.
    pub fn finished(&self, line: &str) {
        let Some(bar) = &self.bar else {
            return;
        };
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        bar.inc(1);
    }

    /// Removes the bar (the lines stay).
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_and_stays_quiet_when_disabled() {
        let progress = Progress::new(true, 3);
        progress.running("read-shadow-file");
        progress.finished("[1/3] read-shadow-file: detected");
        progress.finished("[2/3] read-shadow-file: detected");
        assert_eq!(progress.bar.as_ref().map(ProgressBar::position), Some(2));
        let silent = Progress::new(false, 3);
        silent.finished("nothing");
        assert!(silent.bar.is_none());
    }
}
