//! Writing to the terminal (or a pipe) from the command line. A reader that goes away (`mailwave plan
//! | head -1`) ends the output quietly: after a broken pipe nothing more is written and the command
//! goes on to its normal end, so a run still records its summary and posts its webhook.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_to(closed: &AtomicBool, w: &mut dyn Write, args: std::fmt::Arguments) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = w.write_fmt(args).and_then(|()| w.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        closed.store(true, Ordering::Relaxed);
    }
}

pub fn stdout(args: std::fmt::Arguments) {
    write_to(&STDOUT_CLOSED, &mut std::io::stdout().lock(), args);
}

pub fn stderr(args: std::fmt::Arguments) {
    write_to(&STDERR_CLOSED, &mut std::io::stderr().lock(), args);
}

/// `print!` that never panics on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics on a closed pipe.
macro_rules! outln {
    () => { $crate::cli::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics on a closed pipe.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
