//! The `vigil` command: the agent daemon and its tools.

use std::{
    io::{self, Write},
    net::SocketAddr,
    num::NonZeroUsize,
    sync::Arc,
};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing_subscriber::EnvFilter;
use vigil::{
    enrich::Enriched,
    metrics::Metrics,
    output,
    pipeline::{Pipeline, PipelineConfig},
    server,
};

#[derive(Parser)]
#[command(name = "vigil", version, about = "eBPF runtime security agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing's EnvFilter syntax); logs go to stderr.
    #[arg(long, global = true, env = "VIGIL_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print every traced event, enriched with process, fd and container state.
    Trace(TraceArgs),
    /// Run the agent daemon.
    Run(AgentArgs),
}

#[derive(Args)]
struct TraceArgs {
    #[command(flatten)]
    agent: AgentArgs,
    /// One JSON object per line, keyed by Falco field names.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct AgentArgs {
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, default_value = "127.0.0.1:9376")]
    metrics_addr: SocketAddr,
    /// Ring buffer size in bytes (rounded up to a power of two).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    ring_buffer_bytes: u32,
    /// Most processes kept in the process table.
    #[arg(long, default_value = "65536")]
    max_processes: NonZeroUsize,
    /// Also report the agent's own syscalls.
    #[arg(long)]
    include_self: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Trace(args) => {
                let json = args.json;
                let mut stdout = io::BufWriter::new(io::stdout().lock());
                run_agent(args.agent, move |event, more| {
                    if json {
                        serde_json::to_writer(&mut stdout, &output::json::to_json(event))?;
                        stdout.write_all(b"\n")?;
                    } else {
                        writeln!(stdout, "{}", output::text::to_line(event))?;
                    }
                    if !more {
                        stdout.flush()?;
                    }
                    Ok(())
                })
                .await
            }
            Command::Run(args) => run_agent(args, |_, _| Ok(())).await,
        }
    })
}

fn init_logging(filter: &str, format: LogFormat) -> Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("bad log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Starts the endpoint and the pipeline, hands every event to `consume` (with whether more are
/// ready right now), and stops cleanly on SIGINT or SIGTERM.
async fn run_agent(
    args: AgentArgs,
    mut consume: impl FnMut(&Enriched, bool) -> io::Result<()>,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    let listener = server::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {}", args.metrics_addr))?;
    let (stop_server, mut server_stopped) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, Arc::clone(&metrics), async move {
        let _ = server_stopped.changed().await;
    }));
    tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");

    let mut config = PipelineConfig::for_host(args.max_processes)
        .context("inspecting the host (cgroup v2, procfs)")?;
    config.probes.ring_buffer_bytes = args.ring_buffer_bytes;
    config.probes.ignore_self = !args.include_self;
    let mut pipeline = Pipeline::start(config, Arc::clone(&metrics))
        .await
        .context("starting the eBPF probes")?;
    tracing::info!(programs = ?pipeline.attached(), "vigil is running");

    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let outcome = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
            event = pipeline.next() => {
                let Some(event) = event else { break Ok("reader stopped") };
                match deliver(&mut pipeline, &mut consume, event) {
                    Ok(()) => {}
                    // A closed stdout (`vigil trace | head`) is a normal way to stop.
                    Err(error) if error.kind() == io::ErrorKind::BrokenPipe => break Ok("output closed"),
                    Err(error) => break Err(error).context("writing events"),
                }
            }
        }
    };
    metrics.set_ready(false);
    let reader = pipeline.shutdown().await;
    let _ = stop_server.send(true);
    let _ = server.await;
    let reason = outcome?;
    tracing::info!(reason, "probes detached, vigil stopped");
    reader.context("the ring buffer reader failed")
}

fn deliver(
    pipeline: &mut Pipeline,
    consume: &mut impl FnMut(&Enriched, bool) -> io::Result<()>,
    first: Enriched,
) -> io::Result<()> {
    let mut current = first;
    loop {
        let next = pipeline.try_next();
        consume(&current, next.is_some())?;
        match next {
            Some(event) => current = event,
            None => return Ok(()),
        }
    }
}
