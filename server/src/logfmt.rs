//! How the status logs are written (`--log-format`): one line of text a person reads, or
//! femme's JSON for a machine.
//!
//! `text` is `2026-12-01T15:04:05.123Z INFO  chat port listening on 0.0.0.0:9000`: UTC time
//! to the millisecond, the level, the message. `json` is femme's ndjson (one object per
//! line with `level`, `time` in epoch milliseconds and `msg`; femme prints its coloured
//! developer format instead in debug builds). Without the option, a terminal gets text and
//! anything else (a pipe, a file, a log collector) gets JSON.

use std::io::{self, IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use log::{LevelFilter, Log, Metadata, Record};

/// The shape of a status log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line of text per event: time, level, message.
    Text,
    /// One JSON object per line (femme's ndjson).
    Json,
}

impl LogFormat {
    /// Text when standard output is a terminal, JSON otherwise.
    pub fn for_stdout() -> LogFormat {
        if io::stdout().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Starts logging to standard output in `format` at `level`.
pub fn start(format: LogFormat, level: LevelFilter) {
    match format {
        LogFormat::Json => femme::with_level(level),
        LogFormat::Text => {
            // Only fails when a logger is already set, and then that one keeps logging.
            if log::set_boxed_logger(Box::new(TextLogger)).is_ok() {
                log::set_max_level(level);
            }
        }
    }
}

/// Writes each record as one line of text.
struct TextLogger;

impl Log for TextLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {:<5} {}\n", utc_now(), record.level(), record.args());
        // A closed stdout must not take the server down: the line is lost, nothing else.
        let _ = io::stdout().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = io::stdout().lock().flush();
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(since.as_secs(), since.subsec_millis())
}

/// Formats seconds since the Unix epoch (UTC) and milliseconds.
fn format_utc(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month and day of the `days`th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(format_utc(1_796_137_445, 123), "2026-12-01T15:04:05.123Z");
    }
}
