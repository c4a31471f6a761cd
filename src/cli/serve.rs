//! `wirecheck serve`: one reference server on its own, until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::UsageError;

/// Arguments of `wirecheck serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Server name (see `wirecheck serve --list`).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Server option KEY=VALUE (repeatable).
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// A zone file for the dns server (same as --option zone=FILE).
    #[arg(long, value_name = "FILE")]
    pub zone: Option<String>,
    /// The folder a file-serving reference serves, `http`, `http2` or `ftp` (same as --option root=DIR).
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// List the servers and exit.
    #[arg(long)]
    pub list: bool,
}

impl ServeArgs {
    /// The server's options: every `--option KEY=VALUE`, `--zone` as `zone` and `--root` as `root`.
    pub fn server_options(&self) -> Result<reference_servers::Options, UsageError> {
        let mut opts = reference_servers::Options::new();
        for o in &self.options {
            let (k, v) = o.split_once('=').ok_or_else(|| UsageError::ServerOption(o.clone()))?;
            opts.insert(k.to_string(), v.to_string());
        }
        if let Some(z) = &self.zone {
            opts.insert("zone".to_string(), z.clone());
        }
        if let Some(r) = &self.root {
            opts.insert("root".to_string(), r.clone());
        }
        Ok(opts)
    }
}

/// `wirecheck serve`: exit 0 when stopped, 2 for bad options, 3 when it cannot bind.
pub async fn serve(args: ServeArgs) -> i32 {
    if args.list {
        for (n, d) in reference_servers::servers() {
            println!("{n:<16} {d}");
        }
        return 0;
    }
    let opts = match args.server_options() {
        Ok(o) => o,
        Err(e) => return e.report(),
    };
    let name = args.name.unwrap_or_default();
    let server = match reference_servers::start_server(&name, SocketAddr::from(([127, 0, 0, 1], args.port)), &opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return if matches!(e, reference_servers::Error::Io(_)) { 3 } else { 2 };
        }
    };
    println!(
        "{name} listening on {} ({:?}); Ctrl-C stops it",
        server.local_addr(),
        server.transport()
    );
    let stop = crate::run::interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if server.is_finished() {
                    println!("{name} stopped by itself");
                    break;
                }
            }
        }
    }
    server.shutdown().await;
    0
}
