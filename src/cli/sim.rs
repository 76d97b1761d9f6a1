//! `mailwave sim serve`: the simulator over HTTP on loopback, for rehearsals and tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{BadInput, Cli, exit};
use crate::sim::{Profile, Simulator};
use crate::time::{Clock, ClockSpec};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Serve the simulated token endpoint, InvokeCommand and Graph over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address taken is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seed: the same seed replays the same behaviour.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulated time to start at (RFC 3339; default now).
    #[arg(long)]
    pub start: Option<jiff::Timestamp>,
    /// Profile (TOML) with the service's knobs; defaults behave like a busy tenant.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Users in the simulated directory (and rows of its mailbox usage report); overrides the
    /// profile's `directory_users`.
    #[arg(long)]
    pub users: Option<usize>,
}

/// The largest simulated directory (NHSmail has 2.1 million users).
const MAX_USERS: usize = 5_000_000;

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    let Command::Serve(args) = command;
    let mut profile = match &args.profile {
        Some(p) => Profile::load(p).map_err(BadInput)?,
        None => Profile::default(),
    };
    if let Some(users) = args.users {
        profile.directory_users = users;
    }
    crate::time::clock::check_speed(args.speed).map_err(|e| BadInput(format!("--speed: {e}")))?;
    // Every user is made up front: a directory larger than any tenant would only exhaust memory.
    if profile.directory_users > MAX_USERS {
        return Err(BadInput(format!(
            "--users / directory_users must be at most {MAX_USERS}, got {}",
            profile.directory_users
        ))
        .into());
    }
    // The global --clock (MAILWAVE_CLOCK) wins: another process already keeps that time.
    let spec = cli.clock.unwrap_or_else(|| {
        let now = jiff::Timestamp::now();
        ClockSpec {
            speed: args.speed,
            real_origin: now,
            sim_origin: args.start.unwrap_or(now),
        }
    });
    let clock = Clock::from_spec(spec);
    let sim = Arc::new(Simulator::new(profile, args.seed, clock).map_err(BadInput)?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        // Whoever started us may stop reading: a closed stdout must not take the server down.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "mailwave simulator listening on http://{addr}");
        let _ = writeln!(out, "clock {spec}");
        if spec.speed != 1.0 {
            let _ = writeln!(
                out,
                "its clock runs {}x: let mailwave follow it with\n  export MAILWAVE_CLOCK={spec}",
                spec.speed
            );
        }
        let _ = out.flush();
        crate::sim::http::serve(sim, listener, super::shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
