//! `tacvs demo`: the README's main command. Until the server and director land it
//! is a loopback self-check: a responder on the server state machine, and every
//! client flow run against it over real TCP.

use clap::Args;
use tacvs_client::selfcheck;
use tacvs_proto::Key;

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub async fn run(_a: DemoArgs) -> anyhow::Result<u8> {
    let key = Key::new(rand_key());
    let responder = selfcheck::spawn_responder("127.0.0.1:0".parse()?, key.clone()).await?;
    println!(
        "tacvs demo: protocol self-check against a loopback responder on {}",
        responder.addr
    );
    println!("{:<40} {:<22} {:>9}  result", "check", "reply", "time");
    let checks = selfcheck::run(responder.addr, key).await;
    let mut failed = 0;
    for c in &checks {
        let verdict = if c.ok() { "ok" } else { "FAILED" };
        failed += usize::from(!c.ok());
        println!(
            "{:<40} {:<22} {:>7.2}ms  {verdict}{}",
            c.name,
            c.got,
            c.elapsed.as_secs_f64() * 1e3,
            if c.ok() {
                String::new()
            } else {
                format!(" (wanted {})", c.want)
            }
        );
    }
    println!(
        "{} checks, {} passed, {} failed",
        checks.len(),
        checks.len() - failed,
        failed
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

fn rand_key() -> String {
    (0..24)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect()
}
