//! Download progress on stderr: bars on a terminal, one line per event otherwise (logs and
//! Nomad's task events read lines, not carriage returns).

use image::fetch::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::default())
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, what: &str, total: Option<u64>) {
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template("Downloading {msg}: [{bar:30}] {bytes}/{total_bytes}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        self.bars.lock().unwrap().insert(what.to_string(), bar);
    }
    fn advance(&self, what: &str, bytes: u64) {
        if let Some(b) = self.bars.lock().unwrap().get(what) {
            b.inc(bytes);
        }
    }
    fn resumed(&self, what: &str, offset: u64) {
        let _ = self.multi.println(format!(
            "Resuming {what} at {}",
            crate::output::ibytes(offset)
        ));
    }
    fn finish(&self, what: &str) {
        if let Some(b) = self.bars.lock().unwrap().remove(what) {
            b.finish();
        }
    }
    fn note(&self, message: &str) {
        let _ = self.multi.println(message);
    }
    fn debug(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}

#[derive(Default)]
struct Lines {
    done: Mutex<HashMap<String, u64>>,
}

impl Progress for Lines {
    fn start(&self, what: &str, total: Option<u64>) {
        match total {
            Some(t) => eprintln!("Downloading {what}: {}", crate::output::ibytes(t)),
            None => eprintln!("Downloading {what}"),
        }
        self.done.lock().unwrap().insert(what.to_string(), 0);
    }
    fn advance(&self, what: &str, bytes: u64) {
        if let Some(n) = self.done.lock().unwrap().get_mut(what) {
            *n += bytes;
        }
    }
    fn resumed(&self, what: &str, offset: u64) {
        eprintln!("Resuming {what} at {}", crate::output::ibytes(offset));
    }
    fn finish(&self, what: &str) {
        if let Some(n) = self.done.lock().unwrap().remove(what) {
            eprintln!("Downloaded {what}: {}", crate::output::ibytes(n));
        }
    }
    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
    fn debug(&self, message: &str) {
        eprintln!("{message}");
    }
}
