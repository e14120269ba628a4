//! A terminal inside the pod for `rkt enter` on a terminal (and so `nomad alloc exec -t`).
//!
//! The caller's terminal belongs to the host's devpts, which the pod cannot see: inside, a
//! program that asks which terminal it has (`tty`, a shell's job control, `ssh`-like tools)
//! finds none. So, as `docker exec -t` and systemd-nspawn do, the entered command gets a
//! pseudo-terminal of the pod's own devpts as its controlling terminal, in a session of its
//! own, and this process copies bytes between it and the caller's terminal (put in raw mode,
//! so that echo, line editing and ^C are the inner terminal's business), follows window
//! size changes (SIGWINCH), and passes the command's exit status back.

use crate::error::{Error, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pty::OpenptFlags;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The pod side of the terminal: the master this process keeps, and the slave the command
/// gets; and the caller's terminal settings, restored once the command is done.
pub struct PodTerminal {
    master: OwnedFd,
    slave: OwnedFd,
    caller: CallerTerminal,
}

/// The caller's terminal, put in raw mode as soon as `rkt enter` starts: from then on echo
/// and line editing are the pod's terminal's. What the caller typed before that was echoed
/// by its own terminal already, and is kept to be passed on without a second echo.
pub struct CallerTerminal {
    saved: Option<rustix::termios::Termios>,
    already_echoed: Vec<u8>,
}

impl CallerTerminal {
    /// Raw mode now, and whatever input was waiting (typed, and echoed, before it).
    pub fn take() -> CallerTerminal {
        let stdin = rustix::stdio::stdin();
        let saved = tcgetattr(stdin).ok();
        if let Some(mut raw) = saved.clone() {
            raw.make_raw();
            let _ = tcsetattr(stdin, OptionalActions::Now, &raw);
        }
        let waiting = rustix::io::ioctl_fionread(stdin).unwrap_or(0) as usize;
        let mut already_echoed = vec![0u8; waiting];
        let mut got = 0;
        while got < waiting {
            match rustix::io::read(stdin, &mut already_echoed[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        already_echoed.truncate(got);
        CallerTerminal {
            saved,
            already_echoed,
        }
    }
}

/// The caller gets its terminal back as it was, however `rkt enter` ends (the command's
/// fork leaves through exec or exit, which run no destructors).
impl Drop for CallerTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Drain, t);
        }
    }
}

/// Whether descriptor 0 is a terminal (then the command gets one of the pod's own).
pub fn stdin_is_terminal() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}

impl PodTerminal {
    /// Opens a new terminal on the pod's devpts, whose multiplexer is `ptmx` (a path in the
    /// pod, after joining its mount namespace), the size of the caller's, and hands it what
    /// the caller typed before (without echoing it again).
    pub fn open(ptmx: &str, caller: CallerTerminal) -> Result<PodTerminal> {
        let fail = |e: rustix::io::Errno| Error::os(format!("a terminal in the pod ({ptmx})"), e);
        let flags =
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC;
        let master = rustix::fs::open(ptmx, flags, rustix::fs::Mode::empty()).map_err(fail)?;
        rustix::pty::unlockpt(&master).map_err(fail)?;
        // The slave by descriptor, not by a name looked up in the pod.
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )
        .map_err(fail)?;
        if let Ok(size) = tcgetwinsize(rustix::stdio::stdin()) {
            let _ = tcsetwinsize(&master, size);
        }
        if !caller.already_echoed.is_empty() {
            feed_without_echo(&master, &slave, &caller.already_echoed);
        }
        Ok(PodTerminal {
            master,
            slave,
            caller,
        })
    }

    /// In the command's process, before exec: a session of its own with the pod's terminal
    /// as its controlling terminal and as its stdin, stdout and stderr.
    pub fn attach_child(mut self) -> Result<()> {
        // The caller's settings are for its terminal, which the parent restores: here, after
        // the dup2s below, descriptor 0 is the pod's terminal, which must stay as it is.
        self.caller.saved = None;
        rustix::process::setsid().map_err(|e| Error::os("setsid", e))?;
        rustix::process::ioctl_tiocsctty(&self.slave)
            .map_err(|e| Error::os("taking the pod's terminal", e))?;
        rustix::stdio::dup2_stdin(&self.slave).map_err(|e| Error::os("dup2", e))?;
        rustix::stdio::dup2_stdout(&self.slave).map_err(|e| Error::os("dup2", e))?;
        rustix::stdio::dup2_stderr(&self.slave).map_err(|e| Error::os("dup2", e))?;
        Ok(())
    }

    /// In this process: copies between the caller's terminal and the pod's until `child`
    /// exits; forwards the window size and the signals in `mask` (blocked by the caller);
    /// returns the child's exit code. The caller's terminal settings are restored after.
    pub fn relay(self, child: libc::pid_t, mask: &libc::sigset_t) -> i32 {
        let PodTerminal {
            master,
            slave,
            caller,
        } = self;
        drop(slave);
        let code = relay_until_exit(&master, child, mask);
        drain(master.as_fd());
        drop(caller);
        code
    }
}

/// Writes `input` into the pod's terminal with its echo off (the caller's terminal echoed it
/// already), then turns echo back on: before the command starts, so nothing of its own
/// settings is overwritten. The line discipline takes input in a kernel worker, after the
/// write returns: echo may only come back once it has all been taken, which FIONREAD counts
/// with canonical mode off (with it on, a line without its newline would not count).
fn feed_without_echo(master: &OwnedFd, slave: &OwnedFd, input: &[u8]) {
    use rustix::termios::LocalModes;
    let Ok(saved) = tcgetattr(slave) else {
        let _ = write_all(master.as_fd(), input);
        return;
    };
    let mut quiet = saved.clone();
    quiet
        .local_modes
        .remove(LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON);
    let _ = tcsetattr(slave, OptionalActions::Now, &quiet);
    let _ = write_all(master.as_fd(), input);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while rustix::io::ioctl_fionread(slave).unwrap_or(0) < input.len() as u64
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Back to canonical mode, the kernel hands what is waiting to the next read as a line.
    let _ = tcsetattr(slave, OptionalActions::Now, &saved);
}

fn relay_until_exit(master: &OwnedFd, child: libc::pid_t, mask: &libc::sigset_t) -> i32 {
    let stdin = rustix::stdio::stdin();
    let mut stdin_open = true;
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    loop {
        if let Some(code) = crate::sys::try_wait(child) {
            return code;
        }
        while let Some(sig) = crate::sys::wait_signal(mask, 0) {
            if sig == libc::SIGWINCH {
                if let Ok(size) = tcgetwinsize(stdin) {
                    let _ = tcsetwinsize(master, size);
                }
            } else {
                crate::sys::kill(child, sig);
            }
        }
        let mut fds = vec![PollFd::new(master, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        if poll(&mut fds, Some(&tick)).is_err() {
            continue;
        }
        let (from_pod, from_caller) = (
            fds[0].revents(),
            fds.get(1)
                .map(|f| f.revents())
                .unwrap_or(PollFlags::empty()),
        );
        if from_pod.intersects(PollFlags::IN | PollFlags::HUP) {
            // EIO once the command and everything it started have closed the terminal.
            let _ = copy(master.as_fd(), rustix::stdio::stdout());
        }
        if from_caller.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
            && !copy(stdin, master.as_fd())
        {
            stdin_open = false;
        }
    }
}

/// Copies what is there to read; false at end of input.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, &buf[..n]),
    }
}

fn write_all(to: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(to, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// What the command wrote just before it exited, still in the terminal's buffer.
fn drain(master: BorrowedFd<'_>) {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::new(&master, PollFlags::IN)];
        match poll(&mut fds, Some(&zero)) {
            Ok(n) if n > 0 && fds[0].revents().contains(PollFlags::IN) => {
                if !copy(master, rustix::stdio::stdout()) {
                    return;
                }
            }
            _ => return,
        }
    }
}
