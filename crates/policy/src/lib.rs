//! # tacvs-policy
//!
//! The server role's configuration file: its serde model (`deny_unknown_fields`),
//! validation that reports every mistake with `file:line:column`, and the
//! compiled policy the server evaluates: device groups in a longest-prefix-match
//! trie, users and groups, password hashes, command rules and service grants.
//! Evaluation is pure: a request in, a decision and the rule that made it out.

pub mod authz;
pub mod config;
pub mod hash;
pub mod identity;
pub mod policy;
pub mod run_as;

pub use authz::{AuthorDecision, CommandLine, Explanation};
pub use config::{ProxyMode, ServerFile};
pub use hash::{HashAlgorithm, PasswordHash};
pub use policy::{Action, DeviceGroup, Group, Policy, User, load, parse};
/// Shared with every tacvs configuration file (moved to `tacvs-config`).
pub use tacvs_config::{ConfigError, ConfigErrors, Dur, Secret, Size, error, units};
