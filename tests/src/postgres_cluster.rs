//! A PostgreSQL cluster of a test's own, to stop and start under load without touching the
//! server the rest of the suite shares. Debian's packages (as `.ci/postgres.sh` installs
//! them), run as the `postgres` user; `None` when this machine cannot (the caller says it
//! skipped).

use std::path::PathBuf;
use std::process::Command;

/// A cluster in a temporary directory, stopped and removed when dropped.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// Creates and starts a cluster on a free loopback port, if PostgreSQL's binaries are
    /// installed and this process may run them as `postgres`.
    pub fn start() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()?;
        let data = std::env::temp_dir().join(format!("scimtrail-own-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data).ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let cluster = Cluster { bin, data, port };
        cluster.sh(&format!("chown postgres:postgres '{}'", cluster.data.display()), false)?;
        cluster.as_postgres(&format!("initdb -D '{}' -A trust -U scimtrail", cluster.data.display()))?;
        cluster.up().then_some(cluster)
    }

    /// `postgres://` URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://scimtrail@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again); whether it runs.
    pub fn up(&self) -> bool {
        let data = self.data.display();
        self.as_postgres(&format!(
            "pg_ctl -D '{data}' -l '{data}/server.log' -w -o \"-h 127.0.0.1 -p {} -k '{data}'\" start",
            self.port
        ))
        .is_some()
    }

    /// Stops the server at once (`-m fast`: sessions are cut, as in a crash or failover).
    pub fn down(&self) -> bool {
        self.as_postgres(&format!("pg_ctl -D '{}' -m fast -w stop", self.data.display()))
            .is_some()
    }

    fn as_postgres(&self, command: &str) -> Option<()> {
        self.sh(
            &format!(
                "su postgres -c \"{}/{}\"",
                self.bin.display(),
                command.replace('"', "\\\"")
            ),
            true,
        )
    }

    fn sh(&self, command: &str, quiet: bool) -> Option<()> {
        let output = Command::new("sh").arg("-c").arg(command).output().ok()?;
        if !output.status.success() && !quiet {
            eprintln!("{command}: {}", String::from_utf8_lossy(&output.stderr));
        }
        output.status.success().then_some(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
