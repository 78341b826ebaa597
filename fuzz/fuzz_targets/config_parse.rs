//! Any text as a configuration file (director and server) and as a control
//! socket request: parsing must end in settings or errors, never a panic, and
//! no error may repeat the marker value planted in the text (a stand-in for a
//! key written in the wrong place).
#![no_main]

use libfuzzer_sys::fuzz_target;

const MARK: &str = "Zq7xKeY9sEcReT";

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<tacvs_director::Request>(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The text as written, and with the marker in place of every `@`.
    for t in [text.to_owned(), text.replace('@', MARK)] {
        let errors: Vec<String> = match tacvs_director::config::check_text("d.toml", &t) {
            Ok(c) => c.warnings.iter().map(ToString::to_string).collect(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
        let server: Vec<String> =
            match tacvs_policy::parse("s.toml", &t, std::path::Path::new("/nonexistent")) {
                Ok(_) => Vec::new(),
                Err(e) => e.iter().map(ToString::to_string).collect(),
            };
        for m in errors.iter().chain(&server) {
            assert!(!m.contains(MARK), "an error repeats a value: {m}");
        }
    }
});
