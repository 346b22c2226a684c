//! A TCP relay that adds a round-trip time, for `benches/rtt.sh` on machines whose
//! kernel has no netem qdisc (`tc qdisc add … netem` says "Specified qdisc kind is
//! unknown"). Loopback only, bounded like the mocks (`--idle-exit`, `--max-secs`).
//!
//!     delay_relay --to 127.0.0.1:PORT [--listen 127.0.0.1:0] [--one-way-ms 25]
//!
//! Prints its address (`127.0.0.1:PORT`) on the first line of stdout. Every accepted
//! connection gets its own connection to `--to`; bytes are forwarded both ways, each
//! read delivered `--one-way-ms` after it was read, in order. What netem would add on
//! top is the TCP handshake: a client's `connect` returns here at once, so the client's
//! bytes are held until one round trip after the accept as well (a real client could
//! not have sent them earlier), which puts the first byte at the server when it would
//! arrive on a real link: 1.5 round trips after `connect` was called. It relays TLS
//! untouched: the handshake's own round trips are delayed like any data.
//!
//! Not modelled: TCP's acknowledgements and windows (the benchmark's messages are a few
//! hundred bytes, far below one window), loss, and jitter.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

fn main() {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut to: Option<SocketAddr> = None;
    let mut one_way = Duration::from_millis(25);
    let mut idle_exit = Duration::from_secs(30);
    let mut max = Duration::from_secs(900);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let secs = |v: &str| v.parse::<f64>().map(Duration::from_secs_f64).ok();
        match flag.as_str() {
            "--listen" => listen = value.parse().unwrap_or_else(|_| usage()),
            "--to" => to = Some(value.parse().unwrap_or_else(|_| usage())),
            "--one-way-ms" => {
                one_way = secs(&value).unwrap_or_else(|| usage()) / 1000;
            }
            "--idle-exit" => idle_exit = secs(&value).unwrap_or_else(|| usage()),
            "--max-secs" => max = secs(&value).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let to = to.unwrap_or_else(|| usage());
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("delay_relay: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    match listener.local_addr() {
        Ok(addr) => println!("{addr}"),
        Err(e) => {
            eprintln!("delay_relay: {e}");
            std::process::exit(1);
        }
    }
    let _ = std::io::stdout().flush();

    let last = Arc::new(Mutex::new(Instant::now()));
    {
        let last = Arc::clone(&last);
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let idle = last
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .elapsed();
                if idle > idle_exit || started.elapsed() > max {
                    std::process::exit(0);
                }
            }
        });
    }
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let accepted = Instant::now();
        *last.lock().unwrap_or_else(PoisonError::into_inner) = accepted;
        let last = Arc::clone(&last);
        std::thread::spawn(move || {
            let server = match TcpStream::connect(to) {
                Ok(s) => s,
                Err(e) => return eprintln!("delay_relay: cannot connect to {to}: {e}"),
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let held_until = accepted + 2 * one_way;
            let up = {
                let last = Arc::clone(&last);
                std::thread::spawn(move || pipe(client, s2, one_way, Some(held_until), &last))
            };
            pipe(server, c2, one_way, None, &last);
            let _ = up.join();
        });
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: delay_relay --to ADDR:PORT [--listen ADDR:PORT] [--one-way-ms MS] \
         [--idle-exit SECS] [--max-secs SECS]"
    );
    std::process::exit(2);
}

/// Copies `from` to `to`, each read delivered `delay` after it was read (and not before
/// `not_before`), in order; then shuts `to` down for writing.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    not_before: Option<Instant>,
    last: &Mutex<Instant>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (at, bytes) in rx {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let now = Instant::now();
                *last.lock().unwrap_or_else(PoisonError::into_inner) = now;
                let sent = not_before.map_or(now, |t| t.max(now));
                if tx.send((sent + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}
