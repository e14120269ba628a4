//! Streaming exec (`nomad alloc exec`): `rkt enter` with pipes, or with a pseudo-terminal of
//! its own when a TTY is asked for (then stdout carries both streams, as on a terminal, and
//! the window size follows the user's).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{Child, Command};

/// A running exec: its input, its output streams, and the terminal when it has one.
pub struct Session {
    pub child: Child,
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub terminal: Option<Terminal>,
}

/// The controlling side of the session's pseudo-terminal.
pub struct Terminal {
    master: std::sync::Arc<AsyncFd<OwnedFd>>,
}

impl Terminal {
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(self.master.get_ref(), ws);
    }
}

pub fn spawn(mut cmd: Command, tty: bool) -> std::io::Result<Session> {
    if !tty {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        return Ok(Session {
            stdin: child.stdin.take().map(|s| Box::new(s) as _),
            stdout: Box::new(child.stdout.take().expect("piped")),
            stderr: child.stderr.take().map(|s| Box::new(s) as _),
            child,
            terminal: None,
        });
    }
    let (master, slave) = open_pty()?;
    let dup = |fd: &OwnedFd| -> std::io::Result<Stdio> { Ok(Stdio::from(fd.try_clone()?)) };
    cmd.stdin(dup(&slave)?)
        .stdout(dup(&slave)?)
        .stderr(dup(&slave)?)
        .kill_on_drop(true);
    // SAFETY: setsid and TIOCSCTTY are single system calls, safe between fork and exec;
    // the slave is the child's stdin.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(slave);
    // SAFETY: the AsyncFd owns the master, which stays open and unchanged for its lifetime.
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
    let master = std::sync::Arc::new(master);
    Ok(Session {
        child,
        stdin: Some(Box::new(PtyIo(master.clone()))),
        stdout: Box::new(PtyIo(master.clone())),
        stderr: None,
        terminal: Some(Terminal { master }),
    })
}

/// A new pseudo-terminal, its master non-blocking for the reactor. The slave starts in raw
/// mode: the terminal `rkt enter` opens in the pod echoes and edits lines, and this one must
/// not do it a second time for input that arrives before `rkt enter` has started.
fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::OFlags;
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    let mut raw = rustix::termios::tcgetattr(&slave)?;
    raw.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &raw)?;
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
    Ok((master, slave))
}

/// Reads and writes on the pty master through tokio's reactor.
struct PtyIo(std::sync::Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            let mut guard = std::task::ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let r = guard.try_io(|fd| {
                // SAFETY: reading into the caller's initialized buffer.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    // EIO: every slave descriptor closed, the terminal's end of file.
                    if e.raw_os_error() == Some(libc::EIO) {
                        return Ok(0);
                    }
                    return Err(e);
                }
                Ok(n as usize)
            });
            match r {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return std::task::Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            let mut guard = std::task::ready!(self.0.poll_write_ready(cx))?;
            let r = guard.try_io(|fd| {
                // SAFETY: writing from the caller's buffer.
                let n = unsafe {
                    libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len())
                };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(n as usize)
            });
            if let Ok(result) = r {
                return std::task::Poll::Ready(result);
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
