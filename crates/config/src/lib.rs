//! # tacvs-config
//!
//! What every tacvs configuration file shares, so the server, the director and
//! the tools read settings the same way:
//!
//! * [`Dur`] and [`Size`]: durations (`"250ms"`, `"5m"`) and sizes
//!   (`"128MiB"`), one parser each;
//! * [`Secret`]: keys and passwords, redacted in `Debug`;
//! * [`ConfigError`] / [`ConfigErrors`]: every problem with `file:line:column`,
//!   all of them at once;
//! * [`from_toml`]: TOML into typed settings with errors that **never repeat a
//!   value from the file** (it may be a key written in the wrong place), and
//!   [`Spans`] to point later validation at the exact key or value;
//! * [`html`]: escaping and the page and table the status pages share.

pub mod error;
pub mod html;
pub mod secret;
pub mod source;
pub mod units;

pub use error::{ConfigError, ConfigErrors, Locator};
pub use secret::Secret;
pub use source::{Seg, Spans, from_toml, redact};
pub use units::{Dur, Size};
