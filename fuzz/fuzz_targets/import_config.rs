//! Any bytes as a configuration file for `tacvs import`, read as classic
//! tac_plus and as tac_plus-ng: the parsers and translators must return an
//! error or a translation, never panic; a translation must pass the server's
//! own validation (what `tacvs check` runs), anchored or not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tacvs_import::{Dialect, Options, check, translate};

/// A valid hash standing in for hashing (slow on purpose, not what is fuzzed).
const HASH: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for dialect in [Dialect::Classic, Dialect::Ng] {
        for anchor in [false, true] {
            let opts = Options { anchor, ..Options::default() };
            if let Ok((out, _report)) = translate("fuzz", &text, dialect, &opts) {
                let toml = out.to_toml(&|_| Ok(HASH.to_owned())).unwrap();
                if let Err(e) = check("fuzz", &toml) {
                    panic!("{e}\n{toml}");
                }
            }
        }
    }
});
