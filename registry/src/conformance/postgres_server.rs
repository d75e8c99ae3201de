//! A throwaway PostgreSQL server for tests: the real server from Debian's
//! `postgresql` package (`/usr/lib/postgresql/<major>/bin`), one per test
//! process, with a fresh database per fixture.
//!
//! [`PostgresServer::shared`] runs `initdb` into a new temporary directory
//! and starts `postgres` on a free loopback port, with its socket directory
//! inside that directory (no system service, no cluster outside it), then
//! polls `pg_isready` until the server accepts connections or a deadline
//! passes. PostgreSQL refuses to run as root, so when this process is root
//! both run as the `postgres` user (`setpriv`, which execs in place) in a
//! directory handed to that user. Durability settings are off (`fsync`,
//! `synchronous_commit`): a test server never survives a power cut.
//!
//! **Stopping it**: the server is started by a small `sh` supervisor whose
//! standard input is a pipe held by this process. However this process
//! ends (tests done, panic, `kill -9`), the kernel closes the pipe; the
//! supervisor's `read` returns, it stops `postgres` with a fast shutdown,
//! waits for it and removes the temporary directory. Nothing relies on a
//! destructor, which a `static` never runs, nor on a parent-death signal,
//! which Linux sends when the spawning *thread* ends (a test's thread).
//!
//! [`PostgresServer::fresh_database`] creates a new database for each
//! fixture, so tests share the server but not their data, and run in
//! parallel.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The superuser's password over TCP (the socket inside the server's
/// directory trusts local connections, which `createdb` and `psql` use).
/// Password authentication is on so that a wrong password can be tested.
pub const PASSWORD: &str = "modelwatch-test";

/// How long the server may take to accept connections after it starts.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Starts `postgres` (as `"$@"`); when standard input closes, stops the
/// `postgres` running in `$PG_TEST_DIR/data` (the first, or one started
/// again by [`PostgresServer::start_again`]: its pid file names it), waits
/// for it to exit, and removes `$PG_TEST_DIR`.
const SUPERVISOR: &str = r#"
"$@" </dev/null >>"$PG_TEST_DIR/server.log" 2>&1 &
read -r _ignored
pid=$(head -n 1 "$PG_TEST_DIR/data/postmaster.pid" 2>/dev/null)
[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null
i=0
while [ -e "$PG_TEST_DIR/data/postmaster.pid" ] && [ "$i" -lt 300 ]; do
  sleep 0.1
  i=$((i + 1))
done
rm -rf "$PG_TEST_DIR"
"#;

/// A running PostgreSQL server, stopped when this process exits.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    /// The server's `bin` directory (`createdb`, `pg_isready`).
    bin: PathBuf,
    as_root: bool,
    /// Held for its standard input: closing it (dropping this server, or
    /// this process ending) stops the server.
    _supervisor: Child,
}

static SHARED: OnceLock<PostgresServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PostgresServer {
    /// The server of this test process, started on first use. Panics with
    /// the reason when it cannot start (a test cannot run without it).
    pub fn shared() -> &'static PostgresServer {
        SHARED.get_or_init(|| Self::start(false).unwrap_or_else(|e| panic!("{e}")))
    }

    /// A server of the caller's own, stopped when dropped: for a test that
    /// stops and restarts it ([`PostgresServer::stop`],
    /// [`PostgresServer::start_again`]).
    pub fn dedicated() -> Result<PostgresServer, String> {
        Self::start(false)
    }

    /// A server of the caller's own that also accepts TLS, with a
    /// certificate for `127.0.0.1` from a test authority; see
    /// [`PostgresServer::tls_root`].
    pub fn dedicated_with_tls() -> Result<PostgresServer, String> {
        Self::start(true)
    }

    /// The certificate authority a client verifies a TLS server of
    /// [`PostgresServer::dedicated_with_tls`] with (`sslrootcert`).
    pub fn tls_root(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Stops the server (a fast shutdown, as an administrator restarting
    /// it would) and waits until it has exited.
    pub fn stop(&self) -> Result<(), String> {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("read {}: {e}", pid_file.display()))?;
        let pid = pid.lines().next().unwrap_or_default().trim().to_string();
        run(Command::new("kill").args(["-INT", &pid]))?;
        let deadline = Instant::now() + READY_DEADLINE;
        while pid_file.exists() {
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres (pid {pid}) did not stop within {READY_DEADLINE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the stopped server again on the same port and data, and waits
    /// until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("server.log"))
            .map_err(|e| format!("open the server log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        // Not waited for: the supervisor stops it through its pid file.
        // (Started again without TLS: `start_again` serves restart tests.)
        postgres_command(self.as_root, &self.bin, &self.dir, self.port)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("start postgres again: {e}"))?;
        self.wait_ready()
    }

    /// The URL of the `postgres` maintenance database, as superuser.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// The URL of database `name` on this server, as superuser.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` in database `name` (over the local socket)
    /// and returns its unaligned, tuples-only output.
    pub async fn psql(&self, name: &str, sql: &str) -> Result<String, String> {
        let out = tokio::process::Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", name, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .await
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Creates a new, empty database (with the server's own `createdb`:
    /// no database library outside the backends) and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!(
            "modelwatch_test_{}",
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let out = tokio::process::Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name)
            .output()
            .await
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    fn start(tls: bool) -> Result<Self, String> {
        let bin = bin_dir()?;
        let as_root = is_root()?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("modelwatch-pg-{}-{started}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if tls {
            make_certificates(&dir)?;
        }
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).map_err(|e| format!("write the password file: {e}"))?;
        if as_root {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&dir))?;
        }
        let data = dir.join("data");
        let mut initdb = as_server_user(as_root, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--encoding=UTF8"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "--no-instructions"]);
        run(&mut initdb)?;

        let port = free_port()?;
        let mut postgres = postgres_command(as_root, &bin, &dir, port);
        if tls {
            postgres
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        }
        let mut supervisor = Command::new("sh");
        supervisor
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(postgres.get_program())
            .args(postgres.get_args())
            .env("PG_TEST_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let supervisor = supervisor
            .spawn()
            .map_err(|e| format!("start the PostgreSQL supervisor: {e}"))?;
        let server = Self {
            port,
            dir,
            bin,
            as_root,
            _supervisor: supervisor,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Polls `pg_isready` until the server accepts connections.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q"])
                .arg("-p")
                .arg(self.port.to_string())
                .status()
                .map_err(|e| format!("run pg_isready: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut log = String::new();
                if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
                    let _ = f.read_to_string(&mut log);
                }
                return Err(format!(
                    "the test PostgreSQL on port {} did not accept connections within {:?}; its log:\n{log}",
                    self.port, READY_DEADLINE
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A test certificate authority (`dir/ca.crt`) and a server certificate
/// it signed for `127.0.0.1` (`dir/server.crt`, key `dir/server.key` with
/// mode 0600, as PostgreSQL demands), valid for a day, made by `openssl`.
pub fn make_certificates(dir: &Path) -> Result<(), String> {
    let path = |name: &str| dir.join(name);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=modelwatch test CA"])
        .arg("-keyout")
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("ca.crt")))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(path("server.key"))
        .arg("-out")
        .arg(path("server.csr")))?;
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| format!("write the certificate extensions: {e}"))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(path("server.csr"))
        .arg("-CA")
        .arg(path("ca.crt"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-extfile")
        .arg(path("server.ext"))
        .arg("-out")
        .arg(path("server.crt")))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path("server.key"), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod server.key: {e}"))
}

/// `postgres` on `dir/data`, listening on loopback `port`.
fn postgres_command(as_root: bool, bin: &Path, dir: &Path, port: u16) -> Command {
    let mut postgres = as_server_user(as_root, &bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "max_connections=300"])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"]);
    postgres
}

/// The newest `/usr/lib/postgresql/<major>/bin` holding `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).map_err(|e| {
        format!(
            "{}: {e}; install Debian's `postgresql` package (.ci/run does)",
            root.display()
        )
    })?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no {}/<major>/bin/initdb", root.display()))
}

fn is_root() -> Result<bool, String> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("run id -u: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program`, run as the `postgres` user when this process is root.
fn as_server_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("run {:?}: {e}", command.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            command,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}
