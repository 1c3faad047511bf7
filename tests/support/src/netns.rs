//! Test hosts: network namespaces joined by a veth pair, made by the test and
//! deleted when dropped. Needs root and iproute2 (`ip`).

use std::process::Command;

/// Two network namespaces ("hosts") with one link between them.
#[derive(Debug)]
pub struct TwoHosts {
    /// Namespace names.
    pub names: [String; 2],
    /// The address of each host on the link.
    pub addrs: [String; 2],
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
    /// Creates the namespaces `<prefix>a` and `<prefix>b`, linked by a veth pair
    /// with addresses 10.213.<n>.1 and .2 (n from the process id, so parallel test
    /// runs do not collide). `Err` says why it is not possible here (not root, no
    /// `ip`, no netns support).
    pub fn create(prefix: &str) -> Result<TwoHosts, String> {
        let id = std::process::id();
        let names = [format!("{prefix}{id}a"), format!("{prefix}{id}b")];
        let subnet = id % 250 + 1;
        let addrs = [format!("10.213.{subnet}.1"), format!("10.213.{subnet}.2")];
        let veth = [format!("ve{id}a"), format!("ve{id}b")];
        // From here on, Drop cleans up whatever was made.
        let hosts = TwoHosts { names, addrs };
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
        Ok(hosts)
    }

    /// A command that runs `program` inside host `i` (0 or 1).
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[i]]).arg(program);
        command
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
