//! Test hosts: network namespaces joined by a veth pair, made by the test and
//! deleted when dropped. Needs root, iproute2 (`ip`) and util-linux
//! (`unshare`, `nsenter`).
//!
//! Network namespaces alone share the machine's `/dev/shm`, so Zenoh would
//! carry payloads between the "hosts" through shared memory and nothing would
//! cross the link. Each host therefore also gets its own mount namespace with a
//! private, empty `/dev/shm` (a tmpfs), held open by an anchor process; every
//! command of the host runs in both of its namespaces.

use std::process::{Child, Command, Stdio};

/// Two network namespaces ("hosts") with one link between them, each with its
/// own `/dev/shm`.
#[derive(Debug)]
pub struct TwoHosts {
    /// Namespace names.
    pub names: [String; 2],
    /// The address of each host on the link.
    pub addrs: [String; 2],
    /// The veth device of each host.
    pub devices: [String; 2],
    /// One process per host that holds its mount namespace (private `/dev/shm`).
    anchors: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| format!("cannot run ip: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl TwoHosts {
    /// Creates the namespaces `<prefix><pid>x<n>a` and `…b`, linked by a veth
    /// pair with addresses 10.213.<k>.1 and .2 (from the process id and a
    /// counter, so parallel tests and test runs do not collide). `Err` says why it is not possible here (not root, no
    /// `ip`, no netns support).
    pub fn create(prefix: &str) -> Result<TwoHosts, String> {
        // Unique per process and per call: tests of one binary run in parallel.
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id();
        let names = [format!("{prefix}{id}x{n}a"), format!("{prefix}{id}x{n}b")];
        let subnet = (id + n) % 250 + 1;
        let addrs = [format!("10.213.{subnet}.1"), format!("10.213.{subnet}.2")];
        let veth = [format!("ve{id}x{n}a"), format!("ve{id}x{n}b")];
        // From here on, Drop cleans up whatever was made.
        let mut hosts = TwoHosts {
            names,
            addrs,
            devices: veth.clone(),
            anchors: Vec::new(),
        };
        for name in &hosts.names {
            ip(&["netns", "add", name])?;
        }
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ])?;
        for ((veth, ns), addr) in veth.iter().zip(&hosts.names).zip(&hosts.addrs) {
            ip(&["link", "set", veth, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", veth])?;
            ip(&["-n", ns, "link", "set", veth, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        for i in 0..2 {
            let anchor = hosts.anchor(i)?;
            hosts.anchors.push(anchor);
        }
        Ok(hosts)
    }

    /// Starts the process that holds host `i`'s mount namespace, once its
    /// private `/dev/shm` is mounted.
    fn anchor(&self, i: usize) -> Result<Child, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.names[i]])
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=512m evospike-shm /dev/shm && echo ready && exec sleep 1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run unshare: {err}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|err| format!("anchor of {}: {err}", self.names[i]))?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let output = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "cannot give {} a private /dev/shm: {}",
                self.names[i],
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(child)
    }

    /// A command that runs `program` inside host `i` (0 or 1): its network
    /// namespace and its mount namespace (private `/dev/shm`). The command's
    /// process is `program` itself (nsenter execs it), so its pid is the
    /// program's.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.anchors[i].id().to_string())
            .args(["-m", "-n", "--"])
            .arg(program);
        command
    }

    /// Runs `ip ARGS…` inside host `i` (e.g. `link set DEV down`, `tc …` through
    /// [`TwoHosts::tc`]).
    pub fn ip(&self, i: usize, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.names[i].as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `tc ARGS…` inside host `i`.
    pub fn tc(&self, i: usize, args: &[&str]) -> Result<(), String> {
        self.exec(i, "tc", args).map(drop)
    }

    /// Runs `iptables ARGS…` inside host `i` (its own tables: a rule added
    /// here goes when the namespace does) and returns its standard output.
    pub fn iptables(&self, i: usize, args: &[&str]) -> Result<String, String> {
        self.exec(i, "iptables", args)
    }

    fn exec(&self, i: usize, program: &str, args: &[&str]) -> Result<String, String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.names[i], program])
            .args(args)
            .output()
            .map_err(|err| format!("cannot run {program}: {err}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for anchor in &mut self.anchors {
            let _ = anchor.kill();
            let _ = anchor.wait();
        }
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
