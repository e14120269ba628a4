//! rkt's output conventions: Go tabwriter columns, go-humanize sizes and times, Go's time
//! layout, and error chains.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats rows the way rkt's `tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)` did: cells padded
/// with tabs to a column width that is a multiple of 8 (text width + 1, rounded up). The last
/// cell of a line is not a column and is not padded.
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 1);
        }
    }
    let widths: Vec<usize> = widths.iter().map(|w| w.div_ceil(8) * 8).collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let len = cell.chars().count();
                let tabs = (widths[i] - len).div_ceil(8).max(1);
                out.extend(std::iter::repeat_n('\t', tabs));
            }
        }
        out.push('\n');
    }
    out
}

/// go-humanize's IBytes (shared with the driver's task events).
pub use image::fetch::ibytes;

/// go-humanize's Time: `now`, `5 minutes ago`, `3 days ago`.
pub fn reltime(nanos: i64) -> String {
    let then = UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    let (d, suffix) = match SystemTime::now().duration_since(then) {
        Ok(d) => (d, "ago"),
        Err(e) => (e.duration(), "from now"),
    };
    let s = d.as_secs();
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const WEEK: u64 = 7 * DAY;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 12 * MONTH;
    let phrase = match s {
        0 => return "now".to_string(),
        1 => "1 second".to_string(),
        s if s < MIN => format!("{s} seconds"),
        s if s < 2 * MIN => "1 minute".to_string(),
        s if s < HOUR => format!("{} minutes", s / MIN),
        s if s < 2 * HOUR => "1 hour".to_string(),
        s if s < DAY => format!("{} hours", s / HOUR),
        s if s < 2 * DAY => "1 day".to_string(),
        s if s < WEEK => format!("{} days", s / DAY),
        s if s < 2 * WEEK => "1 week".to_string(),
        s if s < MONTH => format!("{} weeks", s / WEEK),
        s if s < 2 * MONTH => "1 month".to_string(),
        s if s < YEAR => format!("{} months", s / MONTH),
        s if s < 18 * MONTH => "1 year".to_string(),
        s if s < 2 * YEAR => "2 years".to_string(),
        s => format!("{} years", s / YEAR),
    };
    format!("{phrase} {suffix}")
}

/// Go's `2006-01-02 15:04:05.999 -0700 MST`, in UTC.
pub fn go_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let millis = nanos.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    let frac = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_string()
    };
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `outer: inner: root cause`, as rkt printed wrapped errors.
pub fn error_chain(e: &anyhow::Error) -> String {
    // A cause whose words the message already carries (stage0's errors say what their
    // io::Error said, and keep it as their source) is not printed a second time.
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::from(stage0::Error::from(io)).context("reading the plan");
        let text = error_chain(&e);
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert!(text.starts_with("reading the plan: "), "{text}");
    }

    #[test]
    fn humanize_bytes() {
        assert_eq!(ibytes(5), "5 B");
        assert_eq!(ibytes(4608), "4.5 KiB");
        assert_eq!(ibytes(12 * 1024 * 1024 + 3), "12 MiB");
    }

    #[test]
    fn go_layout() {
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time(1_700_000_000_120_000_000),
            "2023-11-14 22:13:20.12 +0000 UTC"
        );
    }

    #[test]
    fn tabs_like_go() {
        let out = tabwrite(&[
            vec!["ID".into(), "NAME".into(), "X".into()],
            vec!["sha512-0123456789ab".into(), "n".into(), "y".into()],
        ]);
        assert_eq!(out, "ID\t\t\tNAME\tX\nsha512-0123456789ab\tn\ty\n");
    }
}
