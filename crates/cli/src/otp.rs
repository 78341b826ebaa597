//! `tacvs otp enroll USER`: a new TOTP secret (RFC 6238) in the server's
//! secrets file, printed as the `otpauth://` URI authenticator apps read and
//! as a QR code in the terminal (the `qrcode` crate).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tacvs_server::otp::{OtpStore, uri};

#[derive(Debug, Args)]
pub struct OtpArgs {
    #[command(subcommand)]
    command: OtpCommand,
}

#[derive(Debug, Subcommand)]
enum OtpCommand {
    /// Give USER a new secret in `[authentication.otp] secrets_file` (replacing
    /// any) and print the otpauth URI and a QR code; reload the server to use it.
    Enroll {
        /// The login name.
        user: String,
        /// The server's configuration file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Print the URI and the secret only, no QR code.
        #[arg(long)]
        no_qr: bool,
    },
}

pub fn run(a: OtpArgs) -> anyhow::Result<u8> {
    match a.command {
        OtpCommand::Enroll { user, config, no_qr } => enroll(&user, &config, no_qr),
    }
}

/// Who the secrets file should belong to when root writes it: (uid, gid, name).
fn file_owner(policy: &tacvs_policy::Policy, path: &std::path::Path) -> Option<(u32, u32, String)> {
    use std::os::unix::fs::MetadataExt;
    if let Some(r) = &policy.run_as {
        return Some((r.uid, r.gid, r.user.clone()));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let m = std::fs::metadata(dir).ok()?;
    (m.uid() != 0).then(|| (m.uid(), m.gid(), format!("uid {}", m.uid())))
}

fn enroll(user: &str, config: &std::path::Path, no_qr: bool) -> anyhow::Result<u8> {
    let policy = tacvs_policy::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    tacvs_policy::identity::directory_user(user.as_bytes())
        .map_err(|b| anyhow::anyhow!("not a user name: {}", b.as_str()))?;
    let path = &policy.otp.secrets_file;
    let mut store = OtpStore::open(path)?;
    // The server reads the file as its own user: written by root, it must
    // still be that user's, the one `[server] user` names or, without it (a
    // service manager starts the server as its user), its directory's owner.
    let owner = if tacvs_server::privilege::is_root() { file_owner(&policy, path) } else { None };
    if let Some((uid, gid, _)) = &owner {
        store.set_owner(*uid, *gid);
    }
    let replaced = store.get(user).is_some();
    let secret = store.enroll(user).map_err(anyhow::Error::msg)?;
    let link = uri(&secret, &policy.otp, user).map_err(anyhow::Error::msg)?;
    if policy.user(user.as_bytes()).is_none() && policy.directories.is_empty() {
        eprintln!(
            "warning: {user:?} is not a [[user]] of {} and no directory is configured",
            config.display()
        );
    }
    println!("{link}");
    if !no_qr {
        let code = qrcode::QrCode::new(link.as_bytes()).context("cannot make a QR code")?;
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{art}");
    }
    println!("secret (base32, for typing into an app): {}", secret.to_base32());
    if let Some((_, _, who)) = owner {
        println!("{} is {who}'s, who the server runs as (mode 0600)", path.display());
    }
    println!(
        "{} {user:?} in {}; reload the server (SIGHUP) to use it. From now on {user} logs in with \
         the password followed by a {}-digit code ({}).",
        if replaced { "replaced the secret of" } else { "enrolled" },
        path.display(),
        policy.otp.digits,
        match policy.otp.pap {
            tacvs_policy::identity::PapOtp::Append => {
                "PAP: appended to the password; ASCII: asked for after it"
            }
            tacvs_policy::identity::PapOtp::Refuse => "ASCII only: asked for after the password",
        }
    );
    Ok(0)
}
