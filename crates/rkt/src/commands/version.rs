//! `rkt version`: rkt's five-line format. Nomad's driver matches the first two lines
//! (`rkt [vV]ersion[:]? (\d[.\d]+)`, `appc [vV]ersion[:]? (\d[.\d]+)`) and needs 1.27.0 or newer,
//! so we state the rkt release we are compatible with there, and our own version after it.

use anyhow::Result;

/// The rkt release whose commands, flags and formats we follow.
pub const RKT_COMPAT_VERSION: &str = "1.30.0";

pub fn run() -> Result<()> {
    print!("{}", text());
    Ok(())
}

pub fn text() -> String {
    format!(
        "rkt Version: {RKT_COMPAT_VERSION}\nappc Version: {}\nGo Version: none (rkt-rs {}, Rust)\nGo OS/Arch: linux/{}\nFeatures: -TPM -SDJOURNAL\n",
        image::appc::AC_VERSION,
        env!("CARGO_PKG_VERSION"),
        image::fetch::host_platform().1,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn five_lines_nomad_can_parse() {
        let t = super::text();
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], "rkt Version: 1.30.0");
        assert_eq!(lines[1], "appc Version: 0.8.11");
        assert!(lines[2].contains(env!("CARGO_PKG_VERSION")));
    }
}
