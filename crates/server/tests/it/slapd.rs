//! A real OpenLDAP `slapd` (Debian's `slapd` and `ldap-utils`) for the tests:
//! a temporary database under the test's directory, loopback, a port the
//! kernel chose, run in the foreground as a child and stopped by its PID.
//! Loaded through `ldapadd` (so the memberof overlay fills `memberOf`) with:
//!
//! | user | password | groups | notes |
//! | --- | --- | --- | --- |
//! | anna | anna-ldap-pass | netops | |
//! | ben | ben-ldap-pass | readonly | |
//! | cleo | cleo-ldap-pass | tier2 (a member of netops) | nested |
//! | dave | dave-ldap-pass | netops | disabled (ppolicy lock) |
//! | eve | eve-ldap-pass | marketing | in no mapped group |
//! | frank | frank-ldap-pass | netops | TOTP secret in `tacvsTotpSecret` |
//! | grace | grace-ldap-pass | netops | also a break-glass `[[user]]` in the tests |
//!
//! Groups form a cycle too (loop-a ⊂ loop-b ⊂ loop-a) that cleo is in, so
//! recursion must end. Included by the `tacvs` crate's tests as well.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=com";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
pub const ROOT_PW: &str = "admin-secret";
pub const SERVICE_DN: &str = "cn=tacvs,ou=services,dc=example,dc=com";
pub const SERVICE_PW: &str = "service-secret";
/// frank's TOTP secret (base32 of "12345678901234567890", RFC 6238's).
pub const FRANK_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Whether the Debian packages are there (`scripts/test` installs them).
pub fn available() -> bool {
    Path::new("/usr/sbin/slapd").exists() && Path::new("/usr/bin/ldapadd").exists()
}

fn require() {
    assert!(
        available(),
        "slapd or ldap-utils is missing: run ./scripts/test, which installs Debian's slapd and ldap-utils"
    );
}

pub struct Slapd {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// `ldaps://` port, when started with TLS.
    pub tls_port: Option<u16>,
}

fn conf(dir: &Path, tls: bool) -> String {
    let tls = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile \
                {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n",
            d = dir.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"{tls}include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
attributetype ( 1.3.6.1.4.1.99999.49.1.1 NAME 'tacvsTotpSecret'
  DESC 'TOTP secret, base32' EQUALITY caseExactMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.49.2.1 NAME 'tacvsOtpUser'
  SUP top AUXILIARY MAY tacvsTotpSecret )
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
database mdb
maxsize 33554432
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {dir}/db
overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE}"
access to attrs=userPassword
  by anonymous auth
  by * none
access to attrs=tacvsTotpSecret
  by dn.exact="{SERVICE_DN}" read
  by * none
access to *
  by users read
  by * none
"#,
        dir = dir.display()
    )
}

fn person(uid: &str, extra: &str) -> String {
    let mut s = format!(
        "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: \
            {uid}\nsn: {uid}\nuserPassword: {uid}-ldap-pass\n"
    );
    for l in extra.lines() {
        s.push_str(l);
        s.push('\n');
    }
    s.push('\n');
    s
}

fn group(cn: &str, members: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s.push('\n');
    s
}

fn uid(u: &str) -> String {
    format!("uid={u},ou=people,{BASE}")
}

fn gdn(g: &str) -> String {
    format!("cn={g},ou=groups,{BASE}")
}

/// The directory's content.
fn data() -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: ou=policies,{BASE}\nobjectClass: organizationalUnit\nou: policies\n\n\
         dn: cn=default,ou=policies,{BASE}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\n\n\
         dn: {SERVICE_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: tacvs\nuserPassword: {SERVICE_PW}\n\n"
    );
    for u in ["anna", "ben", "cleo", "dave", "eve", "grace"] {
        s.push_str(&person(u, ""));
    }
    s.push_str(&person(
        "frank",
        &format!("objectClass: tacvsOtpUser\ntacvsTotpSecret: {FRANK_SECRET}"),
    ));
    s.push_str(&group("loop-a", &[&uid("cleo")]));
    s.push_str(&group("tier2", &[&uid("cleo"), &gdn("loop-a")]));
    s.push_str(&group(
        "netops",
        &[&uid("anna"), &uid("dave"), &uid("frank"), &uid("grace"), &gdn("tier2")],
    ));
    s.push_str(&group("readonly", &[&uid("ben")]));
    s.push_str(&group("marketing", &[&uid("eve")]));
    s.push_str(&group("loop-b", &[&gdn("loop-a")]));
    // Close the cycle: loop-a ⊂ loop-b ⊂ loop-a.
    s.push_str(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n",
        gdn("loop-a"),
        gdn("loop-b")
    ));
    // dave is disabled: locked for good (ppolicy, RFC draft behera).
    s.push_str(&format!(
        "dn: {}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n\n",
        uid("dave")
    ));
    s
}

/// A CA and a certificate for 127.0.0.1 it signs, and another CA that signs
/// nothing (`other-ca.pem`), in `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=tacvs test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ]);
    }
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Slapd {
    /// A new directory with the users above, under `parent`.
    pub fn start(parent: &Path) -> Slapd {
        Slapd::start_with(parent, false)
    }

    /// With TLS too: `ldaps://` on [`Slapd::tls_port`] and StartTLS on the
    /// plain port, a certificate for 127.0.0.1 signed by `ca.pem` (made here
    /// with openssl).
    pub fn start_tls(parent: &Path) -> Slapd {
        Slapd::start_with(parent, true)
    }

    fn start_with(parent: &Path, tls: bool) -> Slapd {
        require();
        let dir = parent.join("slapd");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        if tls {
            make_certificates(&dir);
        }
        std::fs::write(dir.join("slapd.conf"), conf(&dir, tls)).unwrap();
        let mut s = Slapd { child: None, port: 0, dir, tls_port: None };
        // The port is free when chosen; another process may take it before
        // slapd binds it, so a slapd that exits at once is tried again.
        for _ in 0..5 {
            s.port = free_port();
            s.tls_port = tls.then(free_port);
            if s.run() {
                s.load(&data());
                return s;
            }
        }
        panic!("slapd did not start: see {}", s.dir.join("slapd.log").display());
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The `ldaps://` URL (started with TLS).
    pub fn tls_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port.expect("started with TLS"))
    }

    /// The CA that signed the server's certificate (started with TLS).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Start slapd in the foreground on `self.port`; true once it accepts.
    fn run(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.join("slapd.log")).unwrap();
        let child = Command::new("/usr/sbin/slapd")
            .args(["-d", "0", "-f"])
            .arg(self.dir.join("slapd.conf"))
            .args(["-h", &self.listen()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run /usr/sbin/slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child
                && c.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            let tls_up = self.tls_port.is_none_or(|p| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], p)),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if tls_up
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Stop it (SIGTERM by PID, then SIGKILL after 5 s), keeping the database.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if c.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    fn listen(&self) -> String {
        let mut h = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.tls_port {
            h.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        h
    }

    /// Start it again on the same port with the same database.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped slapd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.run() {
            assert!(Instant::now() < deadline, "slapd did not come back on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freeze it (SIGSTOP): connections open, nothing answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaw it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("slapd runs").id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// Apply LDIF (adds, or `changetype: modify` records) as the root DN.
    pub fn load(&self, ldif: &str) {
        let file = self.dir.join("change.ldif");
        std::fs::write(&file, ldif).unwrap();
        let out = Command::new("ldapmodify")
            .args(["-a", "-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW, "-f"])
            .arg(&file)
            .output()
            .expect("run ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Disable `user` (ppolicy lock), as an administrator would.
    pub fn disable(&self, user: &str) {
        self.load(&format!(
            "dn: {}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n",
            uid(user)
        ));
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen slapd does not take SIGTERM until thawed.
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
        self.stop();
    }
}

/// `[[ldap]]` for this directory: the service account, memberOf groups
/// followed recursively, group_map netops/readonly, the TOTP attribute.
/// `extra` is spliced into the table (timeouts, urls before this one).
pub fn ldap_conf(url: &str, extra: &str) -> String {
    format!(
        r#"
[[ldap]]
name = "corp"
urls = [{url}]
bind_dn = "{SERVICE_DN}"
bind_password = "{SERVICE_PW}"
base_dn = "ou=people,{BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{user}}))"
group_base_dn = "ou=groups,{BASE}"
nested = "recursive"
otp_attribute = "tacvsTotpSecret"
{extra}
  [[ldap.group_map]]
  ldap_group = "cn=netops,ou=groups,{BASE}"
  group = "netops"
  [[ldap.group_map]]
  ldap_group = "readonly"
  group = "readonly"
"#
    )
}
