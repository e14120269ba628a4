//! Logs as hclog JSON lines on stderr, which Nomad re-logs at their level under the plugin's
//! name (anything else would be logged as DEBUG text).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn info(msg: &str, fields: &[(&str, &str)]) {
    write("info", msg, fields);
}

pub fn warn(msg: &str, fields: &[(&str, &str)]) {
    write("warn", msg, fields);
}

pub fn error(msg: &str, fields: &[(&str, &str)]) {
    write("error", msg, fields);
}

pub fn debug(msg: &str, fields: &[(&str, &str)]) {
    write("debug", msg, fields);
}

fn write(level: &str, msg: &str, fields: &[(&str, &str)]) {
    let mut line = serde_json::Map::new();
    line.insert("@level".into(), level.into());
    line.insert("@message".into(), msg.into());
    line.insert("@timestamp".into(), timestamp(SystemTime::now()).into());
    for (k, v) in fields {
        line.insert((*k).into(), (*v).into());
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", serde_json::Value::Object(line));
}

/// hclog's layout, `2006-01-02T15:04:05.000000Z07:00`, in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, day) = civil(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hclog_timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_900_000_123_456);
        assert_eq!(timestamp(t), "2026-11-28T21:06:40.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
