//! What several subcommands share, so that each spells it the same way: the
//! shared key (`--key`, `--key-file`, `TACVS_KEY`), durations (`3s`, `800ms`)
//! and source addresses (`ADDRESS[/LEN]`).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use tacvs_proto::Key;

/// The shared key from `--key-file FILE` (its first line) or `--key` /
/// `TACVS_KEY`; never echoed in an error.
pub fn read_key(key: Option<&str>, key_file: Option<&Path>) -> anyhow::Result<Key> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            bail!(
                "the key file {} is empty: put the shared secret on its first line",
                path.display()
            );
        }
        return Ok(Key::new(line));
    }
    match key {
        Some(k) if !k.is_empty() => Ok(Key::new(k)),
        _ => bail!("no shared key: pass --key, --key-file FILE or set TACVS_KEY"),
    }
}

/// A duration as the documentation writes them: a number and a unit.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, e.g. 3s, 800ms or 2m")
    })
}

/// `ADDRESS` or `ADDRESS/LEN`: one source address, or a prefix of them.
pub fn source(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is not an address or a prefix: write e.g. 127.1.0.7 or 127.1.0.0/16")
    })
}

/// The one address of a `--source` given to something that sends from one.
pub fn single_address(net: IpNet) -> anyhow::Result<IpAddr> {
    if net.prefix_len() != net.max_prefix_len() {
        bail!(
            "--source {net} is a prefix: this command sends from one address (write e.g. {})",
            net.network()
        );
    }
    Ok(net.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_errors_suggest_the_documented_form() {
        assert_eq!(duration("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(duration("3s"), Ok(Duration::from_secs(3)));
        let e = duration("3").unwrap_err();
        assert!(e.contains("3s") && !e.contains("3sec"), "{e}");
    }

    #[test]
    fn sources_are_an_address_or_a_prefix() {
        assert_eq!(source("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(source("fd00::/120").unwrap().to_string(), "fd00::/120");
        assert!(source("10.0.0.0/33").is_err() && source("bob").is_err());
        assert_eq!(single_address(source("10.0.0.7/32").unwrap()).unwrap().to_string(), "10.0.0.7");
        let e = single_address(source("10.0.0.0/24").unwrap()).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/24 is a prefix"), "{e}");
    }
}
