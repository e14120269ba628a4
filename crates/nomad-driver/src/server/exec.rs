//! Relaying a streaming exec between Nomad and `rkt enter`: stdin and terminal resizes in,
//! stdout and stderr out, then the exit status.

use crate::backend::exec_stream::Session;
use crate::proto::drivers as d;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Status, Streaming};

type Out = Result<d::ExecTaskStreamingResponse, Status>;

#[derive(Clone, Copy)]
enum Channel {
    Stdout,
    Stderr,
}

fn chunk(ch: Channel, data: Vec<u8>, close: bool) -> d::ExecTaskStreamingResponse {
    let io = Some(d::ExecTaskStreamingIoOperation { data, close });
    match ch {
        Channel::Stdout => d::ExecTaskStreamingResponse {
            stdout: io,
            ..Default::default()
        },
        Channel::Stderr => d::ExecTaskStreamingResponse {
            stderr: io,
            ..Default::default()
        },
    }
}

async fn pump(mut r: Box<dyn AsyncRead + Send + Unpin>, ch: Channel, tx: mpsc::Sender<Out>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send(Ok(chunk(ch, buf[..n].to_vec(), false)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

pub fn relay(
    mut s: Session,
    mut inbound: Streaming<d::ExecTaskStreamingRequest>,
) -> Pin<Box<dyn Stream<Item = Out> + Send>> {
    let (tx, rx) = mpsc::channel(16);
    let terminal = s.terminal.take();
    let mut stdin = s.stdin.take();
    let tty = terminal.is_some();
    tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            if let (Some(size), Some(t)) = (m.tty_size, &terminal) {
                t.resize(size.height.max(0) as u16, size.width.max(0) as u16);
            }
            let Some(io) = m.stdin else { continue };
            if let Some(w) = stdin.as_mut() {
                if !io.data.is_empty() {
                    let _ = w.write_all(&io.data).await;
                }
                if io.close {
                    // A terminal has no end of input but the one its line discipline reads.
                    if tty {
                        let _ = w.write_all(b"\x04").await;
                    }
                    stdin = None;
                }
            }
        }
    });
    tokio::spawn(async move {
        let out = tokio::spawn(pump(s.stdout, Channel::Stdout, tx.clone()));
        let err = s
            .stderr
            .map(|e| tokio::spawn(pump(e, Channel::Stderr, tx.clone())));
        let _ = out.await;
        if let Some(e) = err {
            let _ = e.await;
        }
        let code = match s.child.wait().await {
            Ok(st) => st.code().unwrap_or(-1),
            Err(_) => -1,
        };
        let _ = tx.send(Ok(chunk(Channel::Stdout, Vec::new(), true))).await;
        let _ = tx.send(Ok(chunk(Channel::Stderr, Vec::new(), true))).await;
        let _ = tx
            .send(Ok(d::ExecTaskStreamingResponse {
                exited: true,
                result: Some(d::ExitResult {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await;
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
